"""Export rows as CSV: the columns of each export type, and a gzip writer.

Rows are built straight from the raw record fields Redis returns, not through
`EmailRecord`: an export writes millions of rows and building the record, then
its API dict, costs more than reading it. The test that compares an export
with `/v1/emails` row for row keeps the two views of a record in step.

A cell a spreadsheet would read as a formula (it starts with `=`, `+`, `-`,
`@`, a tab or a carriage return) gets a leading `'` (OWASP's advice on CSV
injection): every cell whose text comes from outside (addresses, tags, MP
replies, IPs, URLs, user agents) goes through `safe`.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from queue_engine.records import iso

COMPRESS_LEVEL = 1
"""zlib's fastest level: a third of level 6's CPU for files about 15% larger."""

_FORMULA_START = frozenset("=+-@\t\r")


def safe(cell: str) -> str:
    return "'" + cell if cell and cell[0] in _FORMULA_START else cell


EMAIL_FIELDS = (
    "account",
    "api_user",
    "recipient",
    "type",
    "tag",
    "status",
    "reason",
    "request_ms",
    "request_ip",
    "send_ms",
    "sending_ip",
    "mp_reply",
    "log",
    "billable",
    "attempts",
)
"""The record hash fields an email status row is made of, in the order `email_row` reads."""

EMAIL_COLUMNS = (
    "email_id",
    "api_user",
    "recipient",
    "type",
    "tag",
    "status",
    "reason",
    "request_time",
    "request_ip",
    "send_time",
    "sending_ip",
    "mp_reply",
    "delivery_log",
    "billable",
    "attempts",
)
"""Named as the fields of a `/v1/emails` item; `delivery_log` is its JSON."""


def time_cell(ms: str | None) -> str:
    return iso(int(ms)) or "" if ms else ""


def email_row(email_id: str, v: Sequence[str | None]) -> list[str]:
    """One row from the EMAIL_FIELDS values of a record."""
    return [
        email_id,
        v[1] or "",
        safe(v[2] or ""),
        v[3] or "",
        safe(v[4] or ""),
        v[5] or "",
        v[6] or "",
        time_cell(v[7]),
        safe(v[8] or ""),
        time_cell(v[9]),
        safe(v[10] or ""),
        safe(v[11] or ""),
        v[12] or "[]",
        "true" if v[13] == "1" else "false",
        v[14] or "0",
    ]


class CsvGzipWriter:
    """Rows to a gzip-compressed UTF-8 CSV file, a chunk at a time, in constant memory."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self._file = gzip.open(path, "wb", compresslevel=COMPRESS_LEVEL)  # noqa: SIM115
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer)
        self.write([columns])

    def write(self, rows: Iterable[Sequence[str]]) -> None:
        # One encode and one compress call per chunk: per-row writes into a text
        # wrapper over gzip cost more than formatting the rows.
        self._csv.writerows(rows)
        self._file.write(self._buffer.getvalue().encode("utf-8", "replace"))
        self._buffer.seek(0)
        self._buffer.truncate()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvGzipWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
