"""Where the rows of each export type come from, a chunk at a time.

A source reads chunks from Redis (`chunks`, async) and turns each into CSV
rows (`rows`, plain CPU work that the worker runs in a thread while the next
chunk is read). Email rows walk the same index and the same period bounds as
`/v1/emails` (queries.py), newest first, so an export lists exactly what the
pages would, in the same order, without the 30-day limit.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from queue_engine import keys
from queue_engine.csv_rows import EMAIL_COLUMNS, EMAIL_FIELDS, email_line
from queue_engine.exports import ExportTask, ExportType
from queue_engine.queries import EmailFilter, period_bounds, smallest_index

CHUNK_SIZE = 1000
READ_BATCH = 250
"""Records one Lua call reads: Redis runs other clients' commands between two calls, so
an export delays them by ~2 ms at most, not the ~10 ms of a whole chunk."""

_READ_LUA = (Path(__file__).parent / "export_read.lua").read_text()

Values = list[str | None]


SUPPORTED = frozenset({ExportType.EMAIL_STATUS})
"""The export types this version can write (the API refuses the others)."""


class UnsupportedExport(Exception):
    """The task's type has no source in this version."""


class RowSource(Protocol):
    columns: Sequence[str]

    async def plan(self) -> int | None:
        """Prepare the walk; returns the estimated row count (an upper bound), if known."""

    def chunks(self) -> AsyncGenerator[Any, None]: ...

    def rows(self, chunk: Any) -> list[str]:
        """The CSV lines of a chunk."""


class EmailRows:
    """Email status records matching an S4 filter, one row per email and recipient."""

    columns: Sequence[str] = EMAIL_COLUMNS

    def __init__(self, redis: Redis, account: str, f: EmailFilter, chunk_size: int) -> None:
        self.redis = redis
        self.account = account
        self.filter = f
        self.chunk_size = chunk_size
        self._lo, self._hi = period_bounds(f)
        self._index = keys.index_all(account)
        # On a plain Redis, Lua calls read a chunk's records (a pipeline of HMGETs costs
        # redis-py ~15 us per command: an export's largest cost); on a cluster the
        # records of a chunk live on every node, so it is a pipeline of HMGETs there.
        self._read_lua = (
            None if isinstance(redis, RedisCluster) else redis.register_script(_READ_LUA)
        )

    async def plan(self) -> int:
        self._index, count = await smallest_index(
            self.redis, self.account, self.filter, self._lo, self._hi
        )
        return count

    async def chunks(self) -> AsyncGenerator[tuple[list[str], list[Values]], None]:
        hi = self._hi
        while True:
            ids = await self.redis.zrevrangebylex(self._index, hi, self._lo, 0, self.chunk_size)
            if not ids:
                return
            yield ids, await self._read(ids)
            if len(ids) < self.chunk_size:
                return
            hi = "(" + ids[-1]

    async def _read(self, ids: list[str]) -> list[Values]:
        email_keys = [keys.email(email_id) for email_id in ids]
        async with self.redis.pipeline(transaction=False) as pipe:
            if self._read_lua is None:
                for key in email_keys:
                    pipe.hmget(key, list(EMAIL_FIELDS))
                return list(await pipe.execute())
            for start in range(0, len(email_keys), READ_BATCH):
                batch = email_keys[start : start + READ_BATCH]
                await self._read_lua(keys=batch, args=EMAIL_FIELDS, client=pipe)
            return [values for batch in await pipe.execute() for values in batch]

    def rows(self, chunk: tuple[list[str], list[Values]]) -> list[str]:
        f, account = self.filter, self.account
        out = []
        for email_id, v in zip(*chunk, strict=True):
            # A record gone (expired, index not trimmed yet) reads as all None.
            if v[0] != account:
                continue
            if f.matches_fields(
                v[2] or "", v[3] or "", v[4] or "", v[1] or "", v[5] or "", v[6] or ""
            ):
                out.append(email_line(email_id, v))
        return out


def source_for(redis: Redis, task: ExportTask, chunk_size: int = CHUNK_SIZE) -> RowSource:
    if task.type is ExportType.EMAIL_STATUS:
        return EmailRows(redis, task.account, EmailFilter(**task.filter), chunk_size)
    raise UnsupportedExport(f"exports of type {task.type.value} are not available yet")
