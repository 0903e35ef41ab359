"""Export rows as CSV lines: the columns of each export type, and a gzip writer.

Lines are built straight from the raw record fields Redis returns, not through
`EmailRecord`, and quoted here, not by the csv module: an export writes
millions of rows, and building the record and its API dict, or the csv
module's character-by-character writer (9 us for a row with its delivery
log), each cost more than reading the record. The test that compares an export
with `/v1/emails` row for row keeps the two views of a record in step, and
a property test checks that the csv module reads back every cell as written.

A cell a spreadsheet would read as a formula (it starts with `=`, `+`, `-`,
`@`, a tab or a carriage return) gets a leading `'` (OWASP's advice on CSV
injection): every cell whose text comes from outside (addresses, tags, MP
replies, IPs, URLs, user agents) goes through `safe`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from queue_engine.records import CLICKS, OPENS, iso
from queue_engine.suppression import Entry

COMPRESS_LEVEL = 1
"""zlib's fastest level: a third of level 6's CPU for files about 15% larger."""

_FORMULA_START = frozenset("=+-@\t\r")


def safe(cell: str) -> str:
    return "'" + cell if cell and cell[0] in _FORMULA_START else cell


def quoted(cell: str) -> str:
    """RFC 4180, as the csv module's default dialect writes it: a cell with a comma, a
    quote or a line break goes in quotes, its quotes doubled."""
    if '"' in cell or "," in cell or "\n" in cell or "\r" in cell:
        return '"' + cell.replace('"', '""') + '"'
    return cell


def text(cell: str | None) -> str:
    """A cell whose text comes from outside: neutralised, then quoted as needed."""
    return quoted(safe(cell)) if cell else ""


def csv_line(cells: Iterable[str]) -> str:
    return ",".join(map(quoted, cells)) + "\r\n"


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


_DATES: dict[int, str] = {}
"""Day → "YYYY-MM-DDT". Formatting each time with datetime was half an export's formatting
time; every Unix day has 86,400,000 ms, so the time of day is table look-ups."""
_MINUTES = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
_SECONDS = [f"{s:02d}" for s in range(60)]
_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]


def time_cell(ms: str | None) -> str:
    """`iso()` of a record's ms field, "" for none."""
    if not ms:
        return ""
    day, rest = divmod(int(ms), 86_400_000)
    date = _DATES.get(day)
    if date is None:
        if len(_DATES) >= 10_000:
            _DATES.clear()
        date = _DATES[day] = (iso(day * 86_400_000) or "")[: len("YYYY-MM-DDT")]
    minute, rest = divmod(rest, 60_000)
    second, milli = divmod(rest, 1000)
    return date + _MINUTES[minute] + _SECONDS[second] + _MILLIS[milli]


def email_line(email_id: str, v: Sequence[str | None]) -> str:
    """One row from the EMAIL_FIELDS values of a record. Ids, names, enums, times and
    numbers need no quoting; the delivery log is JSON, always quoted."""
    return (
        ",".join(
            (
                email_id,
                v[1] or "",
                text(v[2]),
                v[3] or "",
                text(v[4]),
                v[5] or "",
                v[6] or "",
                time_cell(v[7]),
                text(v[8]),
                time_cell(v[9]),
                text(v[10]),
                text(v[11]),
                '"' + (v[12] or "[]").replace('"', '""') + '"',
                "true" if v[13] == "1" else "false",
                v[14] or "0",
            )
        )
        + "\r\n"
    )


EVENT_FIELDS = (*EMAIL_FIELDS[:7], OPENS, CLICKS)
"""The record fields an opens-and-clicks export reads: the filter's, then the events."""

EVENT_COLUMNS = (
    "email_id",
    "api_user",
    "recipient",
    "tag",
    "event",
    "time",
    "url",
    "ip",
    "user_agent",
)


def event_lines(email_id: str, v: Sequence[str | None]) -> list[str]:
    """One row per open and click an email's record keeps (SPEC O1), in time order."""
    events = [
        (event.get("time", ""), kind, event)
        for kind, kept in (("open", v[7]), ("click", v[8]))
        if kept
        for event in map(json.loads, kept.split("\n"))
    ]
    events.sort(key=lambda e: (e[0], e[1]))
    head = f"{email_id},{v[1] or ''},{text(v[2])},{text(v[4])},"
    return [
        head + ",".join([kind, *(text(event.get(name)) for name in _EVENT_DETAILS)]) + "\r\n"
        for _, kind, event in events
    ]


_EVENT_DETAILS = ("time", "url", "ip", "user_agent")


SUPPRESSION_COLUMNS = (
    "address",
    "domain",
    "list",
    "api_user",
    "reason",
    "origin",
    "created_at",
    "expires_at",
    "count",
)
"""Named as the fields of a `/v1/suppressions/<list>` entry."""


def entry_line(entry: Entry) -> str:
    api = entry.to_api()
    return (
        ",".join(
            (
                text(api.get("address")),
                text(api.get("domain")),
                api["list"],
                text(api["api_user"]),
                text(api["reason"]),
                api["origin"],
                api["created_at"] or "",
                api["expires_at"] or "",
                str(api["count"]),
            )
        )
        + "\r\n"
    )


class CsvGzipWriter:
    """CSV lines to a gzip-compressed UTF-8 file, a chunk at a time, in constant memory."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self._file = gzip.open(path, "wb", compresslevel=COMPRESS_LEVEL)  # noqa: SIM115
        self.write([csv_line(columns)])

    def write(self, lines: list[str]) -> None:
        """One encode and one compress call per chunk, not per line."""
        self._file.write("".join(lines).encode("utf-8", "replace"))

    def close(self) -> None:
        self._file.close()
