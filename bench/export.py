"""Offline export of email status records: rows per second and the worker's peak memory.

    .venv/bin/python -m bench.export [--n 1000000] [--rounds 1]

A fresh embedded Redis gets N status records written directly with pipelines:
each an `EmailRecord.to_hash()` hash (a mix of delivered, requesting, invalid
and soft-bounced records, with send times, sending IPs, MP replies and a
delivery log where delivery would leave them; request times spread over 60
days) and the account indexes of `submission.record_indexes`. One export task
of every record (type email_status, no filter: the whole retention period) is
then run by `queue_engine.export_worker.ExportWorker.run_once()` in a process
of its own under `/usr/bin/time -v`, on uvloop as the engine runs it: rows per
second from the claim to the finished task, and the process's peak RSS.

The baseline, measured in the same run under the same `time -v`, is the plain
way to do it: walk the same index with ZREVRANGEBYLEX in chunks of 1,000,
HGETALL each record in a pipeline, write every hash's values with the csv
module into a gzip file (the same compression level). It runs before and
after the export rounds; the faster of the two counts. Results are JSON lines
on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from app import runtime
from app.embedded_redis import EmbeddedRedis
from bench.delivery import machine_fields
from queue_engine import keys
from queue_engine.accounts import EmailType, Principal, create_account, create_api_user
from queue_engine.csv_rows import COMPRESS_LEVEL
from queue_engine.export_worker import ExportWorker
from queue_engine.exports import ExportStore, ExportType
from queue_engine.records import EmailRecord, iso, new_email_id
from queue_engine.statuses import Status
from queue_engine.submission import record_indexes

BENCH = "export"
ACCOUNT = "bench"
API_USERS = ("bench-tx", "bench-mk")
DAY_MS = 86_400_000
CHUNK = 1000
TIME = Path("/usr/bin/time")


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


def record(i: int, request_ms: int) -> EmailRecord:
    """The i-th record: statuses, reasons and fields in the shares a busy sender sees."""
    api_user = API_USERS[i % 2]
    r = EmailRecord(
        email_id=new_email_id(request_ms),
        account=ACCOUNT,
        api_user=api_user,
        recipient=f"customer.{i:07d}@{('gmail', 'qq', 'outlook', 'yahoo')[i % 4]}.example",
        domain="gmail.example",
        type=EmailType.TRANSACTIONAL if api_user == "bench-tx" else EmailType.MARKETING,
        tag=("welcome", "receipt", "promo", "")[i % 4],
        message_id="0" * 24,
        sender="shop@bench.example",
        status=Status.DELIVERED,
        reason="",
        request_ms=request_ms,
        request_ip="203.0.113.7",
    )
    kind = i % 20
    if kind == 0:
        r.status = Status.REQUESTING
        return r
    r.send_ms = request_ms + 800
    r.sending_ip = "192.0.2.10"
    r.attempts = 1
    r.billable = r.connected = True
    if kind in (1, 2):
        r.status, r.reason = Status.INVALID, "address_not_exist"
        r.mp_reply = "550 5.1.1 <customer@gmail.example>: Recipient address rejected: no such user"
    elif kind == 3:
        r.status, r.reason = Status.SOFT_BOUNCE, "spam_rejected"
        r.mp_reply = "250 2.0.0 OK 1700000000 - gsmtp"
    else:
        r.mp_reply = "250 2.0.0 OK 1700000000 a1b2c3d4e5f6 - gsmtp"
    r.delivery_log = [
        {
            "time": iso(r.send_ms),
            "mx": "mx1.gmail.example",
            "sending_ip": r.sending_ip,
            "stage": "data",
            "code": int(r.mp_reply[:3]),
            "reply": r.mp_reply,
            "outcome": "delivered" if r.mp_reply.startswith("2") else "permanent",
        }
    ]
    return r


async def fill(url: str, n: int) -> float:
    """Write n records with their account indexes; returns records per second."""
    redis = runtime.connect(url)
    try:
        await create_account(redis, ACCOUNT, "admin@bench.example")
        for name in API_USERS:
            await create_api_user(redis, ACCOUNT, name, EmailType.TRANSACTIONAL)
        start_ms = int(time.time() * 1000) - 60 * DAY_MS
        step = 60 * DAY_MS // n
        started = time.perf_counter()
        for first in range(0, n, 5000):
            indexes: dict[str, dict[str, int]] = defaultdict(dict)
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(first, min(n, first + 5000)):
                    r = record(i, start_ms + i * step)
                    pipe.hset(keys.email(r.email_id), mapping=r.to_hash())
                    for key in record_indexes(r):
                        indexes[key][r.email_id] = 0
                for key, members in indexes.items():
                    pipe.zadd(key, members)
                await pipe.execute()
            if first % 200_000 == 0:
                log(f"fill: {first:,} of {n:,}")
        return n / (time.perf_counter() - started)
    finally:
        await redis.aclose()


async def create_task(url: str) -> str:
    redis = runtime.connect(url)
    try:
        now_ms = int(time.time() * 1000)
        f = {"start_ms": now_ms - 90 * DAY_MS, "end_ms": now_ms}
        task = await ExportStore(redis).create(
            Principal(ACCOUNT), ExportType.EMAIL_STATUS, f, now_ms
        )
        return task.task_id
    finally:
        await redis.aclose()


async def run_worker(url: str, directory: Path) -> dict[str, Any]:
    """The measured side, in its own process: one ExportWorker task, start to end."""
    redis = runtime.connect(url)
    try:
        worker = ExportWorker(redis, directory)
        started, cpu = time.perf_counter(), time.process_time()
        task = await worker.run_once()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert task is not None and task.status.value == "success", task
        return {"rows": task.rows, "seconds": seconds, "cpu": cpu, "file_size": task.file_size}
    finally:
        await redis.aclose()


async def run_baseline(url: str, directory: Path) -> dict[str, Any]:
    """Pipelined HGETALL over the same index, the csv module into gzip: the plain way."""
    redis = runtime.connect(url)
    path = directory / "baseline.csv.gz"
    try:
        started, cpu = time.perf_counter(), time.process_time()
        rows = 0
        index, hi = keys.index_all(ACCOUNT), "+"
        with gzip.open(path, "wt", compresslevel=COMPRESS_LEVEL, newline="") as fh:
            writer = csv.writer(fh)
            while True:
                ids = await redis.zrevrangebylex(index, hi, "-", 0, CHUNK)
                if not ids:
                    break
                async with redis.pipeline(transaction=False) as pipe:
                    for email_id in ids:
                        pipe.hgetall(keys.email(email_id))
                    hashes = await pipe.execute()
                writer.writerows(h.values() for h in hashes)
                rows += len(ids)
                hi = "(" + ids[-1]
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        return {"rows": rows, "seconds": seconds, "cpu": cpu, "file_size": path.stat().st_size}
    finally:
        path.unlink(missing_ok=True)
        await redis.aclose()


async def redis_cpu(url: str) -> float:
    redis = runtime.connect(url)
    try:
        info = await redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        await redis.aclose()


def measured(role: str, url: str, directory: Path) -> dict[str, Any]:
    """Run one side in a child process under /usr/bin/time -v: its result and resources.

    CPU per row (the process's own, measured around the job, and Redis's) is the
    steadier figure on a machine shared with other work; what an idle machine would
    do is rows / the busier of the two."""
    before = runtime.run(redis_cpu(url))
    command = [
        sys.executable,
        "-m",
        "bench.export",
        "--role",
        role,
        "--url",
        url,
        "--dir",
        str(directory),
    ]
    if TIME.exists():
        command = [str(TIME), "-v", *command]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    if proc.returncode != 0:
        raise SystemExit(f"bench: {role} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    user = re.search(r"User time \(seconds\): ([\d.]+)", proc.stderr)
    system = re.search(r"System time \(seconds\): ([\d.]+)", proc.stderr)
    result["peak_rss_mb"] = round(int(peak.group(1)) / 1024, 1) if peak else None
    if user and system:
        result["cpu_seconds"] = round(float(user.group(1)) + float(system.group(1)), 2)
    result["rows_per_s"] = round(result["rows"] / result["seconds"])
    result["redis_cpu"] = runtime.run(redis_cpu(url)) - before
    result["cpu_us_per_row"] = round(result["cpu"] / result["rows"] * 1e6, 2)
    result["redis_cpu_us_per_row"] = round(result["redis_cpu"] / result["rows"] * 1e6, 2)
    result["cpu_bound_rows_per_s"] = round(result["rows"] / max(result["cpu"], result["redis_cpu"]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="records (default 1000000)")
    parser.add_argument("--rounds", type=int, default=1, help="export rounds (median)")
    parser.add_argument("--role", choices=["worker", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        job = run_worker if args.role == "worker" else run_baseline
        print(json.dumps(runtime.run(job(args.url, args.dir))), flush=True)
        return 0
    if args.n < CHUNK or args.rounds < 1:
        parser.error(f"need --n >= {CHUNK}, --rounds >= 1")

    tmp = Path(tempfile.mkdtemp(prefix="mailpulse-bench-export-"))
    server = EmbeddedRedis(tmp / "redis")
    try:
        url = server.start()
        emit(metric="machine", **machine_fields(), time_v=TIME.exists())
        log(f"writing {args.n:,} records into a fresh Redis")
        written = runtime.run(fill(url, args.n))
        emit(metric="fill_per_s", value=round(written), unit="records/s", n=args.n)
        exports = tmp / "exports"
        exports.mkdir()
        baselines = [measured("baseline", url, exports)]
        log(f"baseline: {baselines[0]['rows_per_s']:,} rows/s")
        rounds = []
        for i in range(args.rounds):
            runtime.run(create_task(url))
            rounds.append(measured("worker", url, exports))
            log(f"export round {i + 1}: {rounds[-1]['rows_per_s']:,} rows/s")
            if rounds[-1]["rows"] != args.n:
                raise SystemExit(f"bench: exported {rounds[-1]['rows']} rows of {args.n}")
        baselines.append(measured("baseline", url, exports))
        log(f"baseline: {baselines[1]['rows_per_s']:,} rows/s")
        rounds.sort(key=lambda r: r["rows_per_s"])
        export = rounds[len(rounds) // 2]
        baseline = max(baselines, key=lambda r: r["rows_per_s"])
        emit(
            metric="export_rows_per_s",
            value=export["rows_per_s"],
            unit="rows/s",
            n=args.n,
            target=50_000,
            baseline=baseline["rows_per_s"],
            ratio=round(export["rows_per_s"] / baseline["rows_per_s"], 3),
            rounds=[r["rows_per_s"] for r in rounds],
            baseline_rounds=[r["rows_per_s"] for r in baselines],
            file_bytes=export["file_size"],
            baseline_file_bytes=baseline["file_size"],
            note="ExportWorker.run_once (claim to finished task) in its own process on "
            "uvloop; baseline: pipelined HGETALL + csv module + gzip, same index, same "
            "compression level, faster of a run before and one after",
        )
        emit(
            metric="export_cpu_us_per_row",
            value=export["cpu_us_per_row"],
            unit="us/row",
            redis=export["redis_cpu_us_per_row"],
            cpu_bound_rows_per_s=export["cpu_bound_rows_per_s"],
            baseline=baseline["cpu_us_per_row"],
            baseline_redis=baseline["redis_cpu_us_per_row"],
            baseline_cpu_bound_rows_per_s=baseline["cpu_bound_rows_per_s"],
            load_avg=[round(x, 2) for x in os.getloadavg()],
            note="CPU of the worker process (all threads) and of Redis per row written; "
            "cpu_bound_rows_per_s = rows / the larger of the two, what a machine with a "
            "core free for each would reach; steadier than rows/s on a shared machine",
        )
        emit(
            metric="export_peak_rss_mb",
            value=export["peak_rss_mb"],
            unit="MB",
            target=200,
            baseline=baseline["peak_rss_mb"],
            cpu_seconds=export.get("cpu_seconds"),
            baseline_cpu_seconds=baseline.get("cpu_seconds"),
            note="Maximum resident set size of the worker process (/usr/bin/time -v)",
        )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
