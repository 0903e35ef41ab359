"""Export tasks and the export worker against a real Redis and real files: claiming,
progress, a worker killed mid-export, leases, failures and retries, 7-day expiry."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.accounts import EmailType, Principal
from queue_engine.csv_rows import EMAIL_COLUMNS, CsvGzipWriter, csv_line, email_line, safe
from queue_engine.export_worker import ExportWorker
from queue_engine.exports import (
    MAX_ACTIVE_PER_ACCOUNT,
    MAX_ATTEMPTS,
    RETENTION_MS,
    ExportLimitError,
    ExportStatus,
    ExportStore,
    ExportTask,
    ExportType,
    task_counts,
)
from queue_engine.records import iso
from queue_engine.submission import SendRequest, Submitter

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000


class Clock:
    """An injectable clock that starts at the real time and moves when told to."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def send(
    redis: Redis,
    engine_config: Any,
    api_user: str,
    to: list[str],
    tag: str = "",
    account: str = "acme",
) -> list[str]:
    principal = Principal(account, api_user, EmailType.TRANSACTIONAL)
    submitter = Submitter(redis, engine_config)
    ids: list[str] = []
    for start in range(0, len(to), 1000):
        request = SendRequest.parse(
            {"from": "shop@acme.example", "to": to[start : start + 1000], "text": "Hi", "tag": tag}
        )
        ids += await submitter.submit(principal, request, "203.0.113.7", int(time.time() * 1000))
    return ids


def all_time(**extra: Any) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    return {"start_ms": now_ms - 90 * DAY_MS, "end_ms": now_ms + 1000, **extra}


def read_export(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == EMAIL_COLUMNS
        return list(reader)


def file_of(worker: ExportWorker, task: ExportTask) -> Path:
    assert task.status is ExportStatus.SUCCESS, task
    path = worker.directory / task.file_name
    assert path.is_file()
    assert task.file_size == path.stat().st_size
    return path


@pytest.fixture
def store(redis: Redis) -> ExportStore:
    return ExportStore(redis)


@pytest.fixture
def account_key() -> Principal:
    return Principal("acme")


async def test_worker_exports_every_matching_email_newest_first(
    redis: Redis, make_sender: Callable[..., Awaitable[Any]], engine_config: Any, store, tmp_path
) -> None:
    await make_sender(api_user="acme-tx")
    await make_sender(api_user="acme-mk")
    await make_sender(account="other", api_user="other-tx")
    welcome = await send(
        redis, engine_config, "acme-tx", [f"w{i}@gmail.example" for i in range(5)], "welcome"
    )
    receipts = await send(
        redis, engine_config, "acme-tx", [f"r{i}@gmail.example" for i in range(3)], "receipt"
    )
    promo = await send(redis, engine_config, "acme-mk", ["p@qq.example"], "welcome")
    await send(redis, engine_config, "other-tx", ["x@gmail.example"], "welcome", account="other")
    worker = ExportWorker(redis, tmp_path / "exports", chunk_size=2)
    now_ms = int(time.time() * 1000)

    everything = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), now_ms)
    tagged = await store.create(
        Principal("acme"),
        ExportType.EMAIL_STATUS,
        all_time(tag="welcome", api_user="acme-tx"),
        now_ms + 1,
    )
    done = [await worker.run_once(), await worker.run_once()]
    assert await worker.run_once() is None  # nothing left
    assert [t.task_id for t in done if t] == [everything.task_id, tagged.task_id]

    rows = read_export(file_of(worker, done[0]))
    # Ids start with the request time, and within one call they keep their order.
    expected = sorted(welcome + receipts + promo, reverse=True)
    assert [r["email_id"] for r in rows] == expected
    assert done[0].rows == len(expected)
    assert done[0].estimated_rows == len(expected)
    first = rows[expected.index(promo[0])]
    assert first["api_user"] == "acme-mk" and first["recipient"] == "p@qq.example"
    assert first["status"] == "requesting" and first["send_time"] == ""
    assert first["request_ip"] == "203.0.113.7"
    assert first["delivery_log"] == "[]" and first["billable"] == "false"

    assert done[1] is not None
    assert [r["email_id"] for r in read_export(file_of(worker, done[1]))] == sorted(
        welcome, reverse=True
    )


async def test_progress_moves_from_pending_through_running_to_success(
    redis: Redis, sender: Any, engine_config: Any, store, tmp_path
) -> None:
    await send(redis, engine_config, sender.api_user, [f"u{i}@gmail.example" for i in range(2000)])
    task = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 1)
    assert (await store.load(task.task_id)).status is ExportStatus.PENDING  # type: ignore[union-attr]
    worker = ExportWorker(redis, tmp_path, chunk_size=50, progress_seconds=0)
    seen: list[tuple[str, int, float]] = []

    async def watch() -> None:
        while True:
            t = await store.load(task.task_id)
            assert t is not None
            if not seen or seen[-1] != (t.status.value, t.rows, t.percent):
                seen.append((t.status.value, t.rows, t.percent))
            if t.status is ExportStatus.SUCCESS:
                return
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await worker.run_once()
    await asyncio.wait_for(watcher, 10)

    statuses = [s for s, _, _ in seen]
    assert statuses[0] in ("pending", "running")
    assert statuses[-1] == "success"
    running = [(rows, pct) for s, rows, pct in seen if s == "running"]
    assert any(0 < rows < 2000 for rows, _ in running), seen
    assert [rows for rows, _ in running] == sorted(rows for rows, _ in running)  # never back
    assert all(pct < 100 for _, pct in running)
    assert seen[-1] == ("success", 2000, 100.0)
    final = await store.load(task.task_id)
    assert final is not None
    assert final.started_ms and final.finished_ms and final.started_ms <= final.finished_ms
    assert final.expires_ms == final.finished_ms + RETENTION_MS
    assert final.attempts == 1


KILLABLE_WORKER = """
import asyncio, sys
from pathlib import Path
from app.runtime import connect
from queue_engine.export_worker import ExportWorker

async def main() -> None:
    worker = ExportWorker(
        connect(sys.argv[1]), Path(sys.argv[2]), chunk_size=10, progress_seconds=0
    )
    await worker.run_once()

asyncio.run(main())
"""


async def test_worker_killed_mid_export_is_taken_over_and_the_export_completes(
    redis: Redis, redis_url: str, sender: Any, engine_config: Any, store, tmp_path, wait_for
) -> None:
    ids = await send(
        redis, engine_config, sender.api_user, [f"u{i}@gmail.example" for i in range(5000)]
    )
    task = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 1)
    directory = tmp_path / "exports"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLABLE_WORKER,
        redis_url,
        str(directory),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:

        async def half_way() -> bool:
            assert proc.returncode is None, "the worker exited before the kill"
            t = await store.load(task.task_id)
            return t is not None and t.status is ExportStatus.RUNNING and t.rows >= 200

        await wait_for(half_way, within=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == -signal.SIGKILL

    dead = await store.load(task.task_id)
    assert dead is not None and dead.status is ExportStatus.RUNNING  # stuck... for now
    assert 200 <= dead.rows < 5000
    assert [p.name.endswith(".part") for p in directory.iterdir()] == [True]

    # Another worker (its clock past the dead one's 60 s lease) takes the task over.
    early = ExportWorker(redis, directory)
    assert await early.run_once() is None  # the lease still holds
    clock = Clock()
    clock.advance(61)
    rescuer = ExportWorker(redis, directory, clock)
    done = await rescuer.run_once()
    assert done is not None and done.task_id == task.task_id
    assert done.status is ExportStatus.SUCCESS and done.attempts == 2
    rows = read_export(file_of(rescuer, done))
    assert [r["email_id"] for r in rows] == sorted(ids, reverse=True)
    assert done.rows == 5000
    assert [p.name for p in directory.iterdir()] == [done.file_name]  # the partial file is gone


async def test_a_stalled_worker_that_lost_its_lease_cannot_touch_the_task(
    redis: Redis, sender: Any, engine_config: Any, store, tmp_path
) -> None:
    ids = await send(redis, engine_config, sender.api_user, ["a@gmail.example", "b@gmail.example"])
    task = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 1)
    now_ms = int(time.time() * 1000)
    claimed = await store.claim("stalled", now_ms, lease_ms=1000)
    assert claimed is not None and claimed.status is ExportStatus.RUNNING
    assert await store.claim("eager", now_ms + 999, lease_ms=1000) is None  # lease holds
    assert await store.beat(task.task_id, "stalled", now_ms + 2000, rows=1)  # renewed
    assert await store.claim("eager", now_ms + 1500, lease_ms=1000) is None

    clock = Clock()
    clock.advance(3)
    done = await ExportWorker(redis, tmp_path, clock).run_once()
    assert done is not None and done.status is ExportStatus.SUCCESS and done.rows == 2
    # The stalled worker wakes up: its heartbeat and its result are refused.
    assert not await store.beat(task.task_id, "stalled", now_ms + 9000, rows=1)
    assert not await store.succeed(task.task_id, "stalled", now_ms, 1, "x.csv.gz", 1)
    assert not await store.fail(task.task_id, "stalled", now_ms, "late")
    after = await store.load(task.task_id)
    assert after == done
    assert len(read_export(file_of(ExportWorker(redis, tmp_path), after))) == len(ids)


async def test_a_task_whose_workers_keep_dying_fails_after_max_attempts(
    redis: Redis, store: ExportStore
) -> None:
    task = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 1)
    now = 1_000
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claimed = await store.claim(f"w{attempt}", now, lease_ms=100)
        assert claimed is not None and claimed.attempts == attempt
        now += 101  # each worker dies: its lease runs out
    assert await store.claim("last", now, lease_ms=100) is None
    failed = await store.load(task.task_id)
    assert failed is not None and failed.status is ExportStatus.FAILED
    assert "stopped 3 times" in failed.error and failed.expires_ms == now + RETENTION_MS
    assert await task_counts(redis) == {"pending": 0, "running": 0, "success": 0, "failed": 1}


async def test_a_failed_task_says_why_and_a_retry_runs_it_again(
    redis: Redis, sender: Any, engine_config: Any, store, tmp_path
) -> None:
    await send(redis, engine_config, sender.api_user, ["a@gmail.example"])
    blocked = tmp_path / "exports"
    blocked.write_text("a file where the directory should be")
    task = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 1)
    assert not await store.retry(task.task_id, 2)  # only a failed task can be retried

    failed = await ExportWorker(redis, blocked).run_once()
    assert failed is not None and failed.status is ExportStatus.FAILED
    assert failed.error == "File exists"  # the reason, without the server's paths
    assert str(tmp_path) not in failed.error
    assert failed.finished_ms and failed.expires_ms == failed.finished_ms + RETENTION_MS

    blocked.unlink()
    assert await store.retry(task.task_id, 3)
    again = await store.load(task.task_id)
    assert again is not None and again.status is ExportStatus.PENDING
    assert (again.error, again.attempts, again.rows, again.finished_ms, again.expires_ms) == (
        "",
        0,
        0,
        None,
        None,
    )
    assert not await store.retry(task.task_id, 4)  # a second click changes nothing
    done = await ExportWorker(redis, blocked).run_once()
    assert done is not None and done.status is ExportStatus.SUCCESS and done.rows == 1


async def test_tasks_and_files_are_deleted_seven_days_after_they_end(
    redis: Redis, sender: Any, engine_config: Any, store, tmp_path
) -> None:
    await send(redis, engine_config, sender.api_user, ["a@gmail.example"])
    clock = Clock()
    worker = ExportWorker(redis, tmp_path, clock)
    kept = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 1)
    done = await worker.run_once()
    assert done is not None
    path = file_of(worker, done)
    clock.advance(3 * 86400)
    newer = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 2)
    newer_done = await worker.run_once()
    assert newer_done is not None

    clock.advance(4 * 86400 - 5)  # 5 s short of 7 days after the first ended
    assert await worker.sweep() == 0
    assert path.exists()
    assert (await store.get(Principal("acme"), kept.task_id, int(clock() * 1000))) is not None

    clock.advance(10)
    assert await worker.sweep() == 1
    assert not path.exists()
    assert await store.load(kept.task_id) is None
    assert not await redis.exists(keys.export_task(kept.task_id))
    assert await store.listing(Principal("acme"), int(clock() * 1000)) == [newer_done]
    assert await task_counts(redis) == {"pending": 0, "running": 0, "success": 1, "failed": 0}
    assert file_of(worker, newer_done).exists()
    # Hidden at its expiry even before a sweep runs.
    late = newer_done.expires_ms
    assert late is not None
    assert await store.get(Principal("acme"), newer.task_id, late) is None
    assert await store.listing(Principal("acme"), late) == []


async def test_the_sweep_removes_files_whose_task_is_gone(redis: Redis, store, tmp_path) -> None:
    task = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 1)
    orphan = tmp_path / "0123456789ab0123456789ab-feed.csv.gz"
    mine = tmp_path / f"{task.task_id}-beef.csv.gz.part"
    other = tmp_path / "notes.txt"
    for path in (orphan, mine, other):
        path.write_text("x")
    await ExportWorker(redis, tmp_path).sweep()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])


async def test_visibility_listing_and_the_active_task_limit(redis: Redis, store) -> None:
    tx, mk = Principal("acme", "acme-tx"), Principal("acme", "acme-mk")
    a = await store.create(tx, ExportType.EMAIL_STATUS, all_time(api_user="acme-tx"), 10)
    b = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 20)
    await store.create(Principal("other"), ExportType.EMAIL_STATUS, all_time(), 30)
    assert [t.task_id for t in await store.listing(Principal("acme"), 40)] == [b.task_id, a.task_id]
    assert [t.task_id for t in await store.listing(tx, 40)] == [a.task_id]
    assert await store.listing(mk, 40) == []
    assert await store.get(mk, a.task_id, 40) is None
    assert await store.get(Principal("other"), a.task_id, 40) is None
    assert await store.get(tx, "../../etc/passwd", 40) is None
    for i in range(MAX_ACTIVE_PER_ACCOUNT - 2):
        await store.create(mk, ExportType.EMAIL_STATUS, all_time(), 50 + i)
    with pytest.raises(ExportLimitError):
        await store.create(tx, ExportType.EMAIL_STATUS, all_time(), 99)
    await store.create(Principal("other"), ExportType.EMAIL_STATUS, all_time(), 99)  # own limit
    assert (await task_counts(redis))["pending"] == MAX_ACTIVE_PER_ACCOUNT + 2


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        ("", ""),
        ("alice@gmail.example", "alice@gmail.example"),
    ],
)
def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(cell: str, written: str) -> None:
    assert safe(cell) == written


async def test_engine_process_runs_the_export_worker(
    redis: Redis, sender: Any, engine_config: Any, mp: Any, start_engine, store, tmp_path, wait_for
) -> None:
    ids = await send(redis, engine_config, sender.api_user, ["a@gmail.example", "b@qq.example"])
    engine = await start_engine(mp, exports_dir=tmp_path)
    assert engine.exports is not None

    async def delivered() -> bool:
        statuses = [await redis.hget(keys.email(i), "status") for i in ids]
        return statuses == ["delivered", "delivered"]

    await wait_for(delivered)
    task = await store.create(Principal("acme"), ExportType.EMAIL_STATUS, all_time(), 1)

    async def finished() -> ExportTask | None:
        t = await store.load(task.task_id)
        return t if t is not None and t.status is ExportStatus.SUCCESS else None

    done = await wait_for(finished)
    rows = read_export(tmp_path / done.file_name)
    assert [r["status"] for r in rows] == ["delivered", "delivered"]
    assert all(r["send_time"] and r["sending_ip"] and r["mp_reply"].startswith("250") for r in rows)
    assert all(r["delivery_log"].startswith('[{"time"') for r in rows)
    assert {r["billable"] for r in rows} == {"true"}


def test_csv_is_utf8_with_a_header_row(tmp_path) -> None:
    path = tmp_path / "x.csv.gz"
    out = CsvGzipWriter(path, ("a", "b"))
    out.write([csv_line(["日本語", "line\nbreak, comma"])])
    out.write([])
    out.close()
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["a", "b"],
        ["日本語", "line\nbreak, comma"],
    ]


@given(st.lists(st.text(), min_size=2, max_size=6))
def test_the_csv_module_reads_every_line_back_cell_for_cell(cells: list[str]) -> None:
    line = csv_line(cells)
    assert list(csv.reader(io.StringIO(line, newline=""))) == [cells]
    assert line == _csv_module_line(cells)  # byte for byte what the csv module writes


def _csv_module_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


FREE_TEXT = {2: "recipient", 4: "tag", 8: "request_ip", 10: "sending_ip", 11: "mp_reply"}
"""EMAIL_FIELDS positions whose text comes from outside; the others are names, enums and
numbers mailpulse itself wrote."""


@given(
    st.lists(st.one_of(st.none(), st.text()), min_size=len(FREE_TEXT), max_size=len(FREE_TEXT)),
    st.one_of(st.none(), st.text()),
    st.integers(0, 4_102_444_800_000),
    st.one_of(st.none(), st.integers(0, 4_102_444_800_000)),
)
def test_an_email_line_reads_back_as_its_cells(
    texts: list[str | None], log: str | None, request_ms: int, send_ms: int | None
) -> None:
    values: list[str | None] = ["acme", "acme-tx", None, "marketing", None, "invalid", "spam"]
    values += [str(request_ms), None, None if send_ms is None else str(send_ms), None, None]
    values += [log, "1", "3"]
    for i, value in zip(FREE_TEXT, texts, strict=True):
        values[i] = value
    [row] = csv.reader(io.StringIO(email_line("ab" * 14, values), newline=""))
    cell = dict(zip(EMAIL_COLUMNS, row, strict=True))
    for i, column in FREE_TEXT.items():
        assert cell[column] == safe(values[i] or "")
    assert cell["delivery_log"] == (log or "[]")
    assert cell["request_time"] == iso(request_ms)
    assert cell["send_time"] == ("" if send_ms is None else iso(send_ms))
    assert (cell["email_id"], cell["api_user"], cell["type"]) == ("ab" * 14, "acme-tx", "marketing")
    assert (cell["status"], cell["reason"], cell["billable"], cell["attempts"]) == (
        "invalid",
        "spam",
        "true",
        "3",
    )
