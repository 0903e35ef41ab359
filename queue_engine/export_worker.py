"""The export worker: takes export tasks one at a time and writes their files.

Each engine process runs one (several engines: several workers, each task
taken by exactly one, exports.py). A file is written as
`<task id>-<worker token>.csv.gz.part` and renamed when complete, so a
download never sees half a file and two workers that once held the same task
never write the same path. CSV formatting and compression run in one
thread per worker while the event loop reads the next chunk from Redis: the
engine keeps delivering mail during a long export, and Redis time overlaps
Python time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queue_engine.csv_rows import CsvGzipWriter
from queue_engine.export_sources import CHUNK_SIZE, source_for
from queue_engine.exports import ExportStore, ExportTask, is_task_id

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
"""A dead worker's task is taken over this long after its last heartbeat."""
PROGRESS_SECONDS = 1.0
"""How often a running task's row count is updated (and its lease renewed)."""
POLL_SECONDS = 1.0
SWEEP_SECONDS = 60.0
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)

T = TypeVar("T")


class LeaseLost(Exception):
    """Another worker took the task over (ours stalled past its lease) or it was deleted."""


class ExportWorker:
    def __init__(
        self,
        redis: Redis,
        directory: Path,
        clock: Callable[[], float] = time.time,
        *,
        lease_seconds: float = LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        chunk_size: int = CHUNK_SIZE,
        progress_seconds: float = PROGRESS_SECONDS,
    ) -> None:
        self.redis = redis
        self.directory = directory
        self.clock = clock
        self.store = ExportStore(redis)
        self.lease_ms = int(lease_seconds * 1000)
        self.beat_seconds = min(progress_seconds, lease_seconds / 4)
        self.poll_seconds = poll_seconds
        self.chunk_size = chunk_size
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-writer")
        """One thread: every step of a file (open, chunks, close) runs in order."""

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def run(self) -> None:
        """Take and write tasks until cancelled; survives Redis outages by retrying."""
        backoff = 0.1
        next_sweep = 0.0
        try:
            while True:
                try:
                    if time.monotonic() >= next_sweep:
                        await self.sweep()
                        next_sweep = time.monotonic() + SWEEP_SECONDS
                    task = await self.run_once()
                    backoff = 0.1
                except _REDIS_DOWN as exc:
                    log.warning("exports: redis unavailable (%s); retrying in %.1fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                except Exception:
                    # A bug must not end exports for the life of the engine; a task it
                    # hit goes back to the queue when its lease runs out.
                    log.exception("exports: worker error; carrying on")
                    task = None
                if task is None:
                    await asyncio.sleep(self.poll_seconds)
        finally:
            self._writer.shutdown(wait=False)

    async def run_once(self) -> ExportTask | None:
        """Claim one task and write it; the task as it ended, or None if none was waiting."""
        token = secrets.token_hex(8)
        task = await self.store.claim(token, self.now_ms(), self.lease_ms)
        if task is None:
            return None
        log.info("exports: task %s (%s) started by %s", task.task_id, task.type.value, token)
        await self._export(task, token)
        return await self.store.load(task.task_id)

    async def _export(self, task: ExportTask, token: str) -> None:
        final = self.directory / f"{task.task_id}-{token}.csv.gz"
        part = final.with_name(final.name + ".part")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._remove_files(task.task_id)  # what a worker that died on this task left
            rows = await self._write(task, token, part)
            part.rename(final)
            done = await self.store.succeed(
                task.task_id, token, self.now_ms(), rows, final.name, final.stat().st_size
            )
            if not done:
                raise LeaseLost
            log.info("exports: task %s done, %d rows", task.task_id, rows)
        except LeaseLost:
            log.warning("exports: task %s was taken over; %s stops", task.task_id, token)
            final.unlink(missing_ok=True)
        except _REDIS_DOWN:
            raise  # the lease runs out and a worker takes the task over
        except Exception as exc:
            log.exception("exports: task %s failed", task.task_id)
            # OSError's own text names the server's paths: the customer gets the reason.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            await self.store.fail(task.task_id, token, self.now_ms(), reason or type(exc).__name__)
        finally:
            with contextlib.suppress(OSError):  # the directory may be what failed
                part.unlink(missing_ok=True)

    async def _write(self, task: ExportTask, token: str, path: Path) -> int:
        source = source_for(self.redis, task, self.chunk_size)
        await self._beat(task, token, 0, await source.plan())
        writer = await self._in_writer(CsvGzipWriter, path, source.columns)
        chunks = source.chunks()
        following: asyncio.Future[Any] = asyncio.ensure_future(anext(chunks, None))
        rows = 0
        last_beat = time.monotonic()
        try:
            while (chunk := await following) is not None:
                following = asyncio.ensure_future(anext(chunks, None))
                rows += await self._in_writer(_write_chunk, writer, source.rows, chunk)
                if time.monotonic() - last_beat >= self.beat_seconds:
                    await self._beat(task, token, rows, source.estimate(rows))
                    last_beat = time.monotonic()
            await self._in_writer(writer.close)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following
            await chunks.aclose()
            self._writer.submit(writer.close)  # after a write still running, if cancelled
        return rows

    async def _beat(self, task: ExportTask, token: str, rows: int, estimate: int | None) -> None:
        fields = {"rows": rows} if estimate is None else {"rows": rows, "estimate": estimate}
        if not await self.store.beat(task.task_id, token, self.now_ms() + self.lease_ms, **fields):
            raise LeaseLost

    async def _in_writer(self, job: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, job, *args)

    async def sweep(self) -> int:
        """Delete expired tasks with their files, and files whose task is gone (a worker
        that died between the two); returns how many tasks expired."""
        expired = await self.store.expire(self.now_ms())
        for task_id in expired:
            self._remove_files(task_id)
        if self.directory.is_dir():
            names = {p.name.partition("-")[0] for p in self.directory.iterdir()}
            ids = sorted(name for name in names if is_task_id(name))
            for task_id, exists in zip(ids, await self.store.exists(ids), strict=True):
                if not exists:
                    self._remove_files(task_id)
        if expired:
            log.info("exports: %d expired tasks deleted", len(expired))
        return len(expired)

    def _remove_files(self, task_id: str) -> None:
        for path in self.directory.glob(f"{task_id}-*"):
            path.unlink(missing_ok=True)


def _write_chunk(writer: CsvGzipWriter, rows_of: Callable[[Any], list[str]], chunk: Any) -> int:
    rows = rows_of(chunk)
    writer.write(rows)
    return len(rows)
