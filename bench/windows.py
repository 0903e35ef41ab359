"""Rate windows: update throughput vs raw ZINCRBY, and the cost of GET /v1/queues.

    .venv/bin/python -m bench.windows [--n 100000] [--queues 1000] [--calls 30]

Part 1, window updates. The engine counts events of a queue with one call of
`queue_engine.windows.RateWindows.add` per queue per batch, queued on a
pipeline (`QueueStore.enqueue`, `Deliverer._record`). The bench queues
`--depth` such calls per pipeline, each for the next of `--spread` queues,
until `--n` calls have run; one call counts inbound, attempted and outbound
events, so it updates all three counters of its queue (in Lua: ZADD NX,
ZINCRBY, ZREMRANGEBYSCORE, EXPIRE on each). The baseline is the same number of
plain ZINCRBYs (one counter each) in pipelines of the same depth over the same
number of keys, against the same Redis, in the same run, rounds interleaved.

  window_updates_per_s  `add` calls per second; baseline: ZINCRBY per second.
                        ratio = one engine update (a queue's three counters,
                        trimmed and expired) per raw ZINCRBY (one counter).

Part 2, GET /v1/queues. One API_USER with `--queues` queues (recipient
domains), each with pending mail (stored through the real submission path,
`queue_engine.submission.Submitter`) and every counter holding a bucket for
each of the last 31 seconds (a queue busy all the time: the most a read can
find). Then `--calls` timed GETs through the ASGI app (httpx.ASGITransport,
Basic auth, the real handler), interleaved with as many timed calls of
`queue_engine.snapshot.queue_statuses` alone; p50 and p99 (nearest rank: with
30 calls, the slowest).

Everything runs on uvloop (`app.runtime.run`, as the engine and the web do)
against a fresh embedded Redis in a temp dir (AOF everysec, unix socket).
Results are JSON lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from redis.asyncio import Redis

from app import runtime
from bench.delivery import machine_fields
from bench.spine import ACCOUNT, API_USER, SENDER, SUBJECT, TEXT, cpu_seconds, temp_redis
from queue_engine import keys
from queue_engine.accounts import EmailType, Principal, create_account, create_api_user
from queue_engine.config import EngineConfig
from queue_engine.snapshot import queue_domains, queue_statuses
from queue_engine.submission import SendRequest, Submitter
from queue_engine.windows import KEEP_SECONDS, RateWindows
from web.api import ApiConfig
from web.app import create_web_app

BENCH = "windows"


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def redis_version(redis: Redis) -> str:
    return str((await redis.info("server"))["redis_version"])


# --- part 1: window updates -----------------------------------------------------------


async def engine_round(
    redis: Redis, windows: RateWindows, tags: list[str], n: int, depth: int
) -> None:
    """n `RateWindows.add` calls, `depth` per pipeline, over the queues in turn."""
    done = 0
    while done < n:
        now_s = int(time.time())
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(done, min(done + depth, n)):
                await windows.add(
                    pipe, tags[i % len(tags)], now_s, inbound=1, attempted=1, outbound=1
                )
            await pipe.execute()
        done += depth


async def raw_round(redis: Redis, raw_keys: list[str], n: int, depth: int) -> None:
    """n ZINCRBYs, `depth` per pipeline, over the keys in turn (member: the second)."""
    done = 0
    while done < n:
        now_s = int(time.time())
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(done, min(done + depth, n)):
                pipe.zincrby(raw_keys[i % len(raw_keys)], 1, now_s)
            await pipe.execute()
        done += depth


async def evalsha_round(
    redis: Redis, windows: RateWindows, tags: list[str], n: int, depth: int
) -> None:
    """Diagnosis: the same Lua calls queued as plain EVALSHA (no redis-py Script wrapper,
    so no SCRIPT EXISTS before each pipeline); separates client from server cost."""
    sha = windows._count.sha
    window_keys: list[list[Any]] = [
        [keys.queue_window(t, c) for c in ("in", "att", "out")] for t in tags
    ]
    done = 0
    while done < n:
        now_s = int(time.time())
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(done, min(done + depth, n)):
                args = [*window_keys[i % len(tags)], now_s, KEEP_SECONDS, 1, 1, 1]
                pipe.evalsha(sha, 3, *args)
            await pipe.execute()
        done += depth


async def timed(
    job: Callable[[], Awaitable[None]], redis_pid: int | None
) -> tuple[float, float, float]:
    """Wall seconds, this process's CPU seconds, Redis's CPU seconds."""
    redis_cpu = cpu_seconds(redis_pid)
    start, cpu = time.perf_counter(), time.process_time()
    await job()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, cpu_seconds(redis_pid) - redis_cpu


async def bench_updates(redis: Redis, redis_pid: int | None, args: argparse.Namespace) -> None:
    windows = RateWindows(redis)
    tags = [keys.queue_tag("bench-upd", f"d{i}.bench.example") for i in range(args.spread)]
    raw_keys = [f"bench:raw:{{{t}}}" for t in tags]
    n: int = args.n
    depth: int = args.depth
    # Warm-up: load the script, create the keys, let the allocator settle.
    await engine_round(redis, windows, tags, min(n, 10 * depth), depth)
    await raw_round(redis, raw_keys, min(n, 10 * depth), depth)
    kinds: dict[str, Callable[[], Awaitable[None]]] = {
        "engine": lambda: engine_round(redis, windows, tags, n, depth),
        "raw": lambda: raw_round(redis, raw_keys, n, depth),
        "evalsha": lambda: evalsha_round(redis, windows, tags, n, depth),
    }
    rounds: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
    for r in range(args.rounds):
        for kind, job in kinds.items():
            rounds[kind].append(await timed(job, redis_pid))
            wall = rounds[kind][-1][0]
            log(f"round {r + 1}/{args.rounds} {kind}: {n / wall:,.0f} per s")

    def rate(kind: str) -> float:
        return float(statistics.median(n / wall for wall, _, _ in rounds[kind]))

    def us_per_op(kind: str, which: int) -> float:
        return round(1e6 * float(statistics.median(r[which] for r in rounds[kind])) / n, 2)

    engine, raw, direct = rate("engine"), rate("raw"), rate("evalsha")
    common = {"n": n, "depth": depth, "queues": args.spread, "rounds": args.rounds}
    emit(
        metric="window_updates_per_s",
        value=round(engine),
        unit="updates/s",
        baseline=round(raw),
        ratio=round(engine / raw, 3),
        update="one RateWindows.add call: 3 counters of one queue, each ZADD NX + ZINCRBY "
        "+ ZREMRANGEBYSCORE + EXPIRE in one Lua call",
        baseline_update="one ZINCRBY (one counter)",
        rounds_per_s={k: [round(n / w) for w, _, _ in v] for k, v in rounds.items()},
        **common,
    )
    emit(
        metric="window_counter_updates_per_s",
        value=round(3 * engine),
        unit="counter updates/s",
        baseline=round(raw),
        ratio=round(3 * engine / raw, 3),
        note="the same runs counted per counter touched (3 per engine call)",
        **common,
    )
    emit(
        metric="window_update_cpu_us",
        value={"client": us_per_op("engine", 1), "redis": us_per_op("engine", 2)},
        baseline={"client": us_per_op("raw", 1), "redis": us_per_op("raw", 2)},
        evalsha_direct={
            "client": us_per_op("evalsha", 1),
            "redis": us_per_op("evalsha", 2),
            "per_s": round(direct),
        },
        unit="us/update",
        note="CPU per call (engine) or per ZINCRBY (baseline); evalsha_direct: the same Lua "
        "call queued as a bare EVALSHA, without redis-py's Script wrapper",
        **common,
    )
    await redis.delete(*raw_keys)


# --- part 2: GET /v1/queues -----------------------------------------------------------


async def populate_queues(redis: Redis, queues: int, pending: int) -> tuple[str, list[str]]:
    """An API_USER with `queues` queues, `pending` emails each, submitted for real."""
    await create_account(redis, ACCOUNT, "admin@bench.example")
    api_key = (await create_api_user(redis, ACCOUNT, API_USER, EmailType.TRANSACTIONAL)).api_key
    principal = Principal(ACCOUNT, API_USER, EmailType.TRANSACTIONAL)
    submitter = Submitter(redis, EngineConfig())
    domains = [f"q{i:04d}.bench.example" for i in range(queues)]
    rcpts = [f"user{j}@{d}" for j in range(pending) for d in domains]
    for start in range(0, len(rcpts), 1000):
        request = SendRequest.parse(
            {"from": SENDER, "to": rcpts[start : start + 1000], "subject": SUBJECT, "text": TEXT}
        )
        await submitter.submit(principal, request, "127.0.0.1", int(time.time() * 1000))
    return api_key, [keys.queue_tag(API_USER, d) for d in domains]


async def fill_windows(redis: Redis, tags: list[str], seconds: list[int]) -> None:
    """One bucket per counter per queue for each of `seconds`, as a busy engine leaves them."""
    windows = RateWindows(redis)
    for s in seconds:
        async with redis.pipeline(transaction=False) as pipe:
            for i, tag in enumerate(tags):
                await windows.add(pipe, tag, s, inbound=3 + i % 7, attempted=5, outbound=4)
            await pipe.execute()


async def bench_get_queues(redis: Redis, args: argparse.Namespace) -> None:
    log(f"GET /v1/queues: {args.queues} queues x {args.pending} pending, via Submitter")
    api_key, tags = await populate_queues(redis, args.queues, args.pending)
    now_s = int(time.time())
    await fill_windows(redis, tags, list(range(now_s - args.history + 1, now_s + 1)))
    app = create_web_app(ApiConfig(engine=EngineConfig()), redis)
    transport = httpx.ASGITransport(app=app)
    http_times: list[float] = []
    direct_times: list[float] = []
    body_bytes = 0
    buckets = 0
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", auth=(API_USER, api_key)
    ) as client:

        async def http_call() -> float:
            nonlocal body_bytes
            start = time.perf_counter()
            response = await client.get("/v1/queues")
            took = time.perf_counter() - start
            if response.status_code != 200:
                raise SystemExit(f"bench: GET /v1/queues: {response.status_code} {response.text}")
            listed = len(response.json()["queues"])
            if listed != args.queues:
                raise SystemExit(f"bench: GET /v1/queues listed {listed} of {args.queues} queues")
            body_bytes = len(response.content)
            return took

        async def direct_call() -> float:
            nonlocal buckets
            start = time.perf_counter()
            queues = await queue_domains(redis, {API_USER})
            statuses = await queue_statuses(redis, queues, int(time.time() * 1000))
            took = time.perf_counter() - start
            if len(statuses) != args.queues or any(s.idle for s in statuses):
                raise SystemExit("bench: queue_statuses did not see every queue active")
            buckets = sum(1 for s in statuses for r in s.rates.values() if r.outbound)
            return took

        profiler = None
        for i in range(args.warmup + args.calls):
            if args.history >= KEEP_SECONDS:
                # Keep every queue's newest bucket current (untimed): the windows stay full.
                await fill_windows(redis, tags, [int(time.time())])
            if i == args.warmup and args.profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            http = await http_call()
            direct = await direct_call()
            if i >= args.warmup:
                http_times.append(http)
                direct_times.append(direct)
        if profiler is not None:
            profiler.disable()
            import pstats

            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    per_queue = await queue_buckets(redis, tags[0])
    common = {
        "queues": args.queues,
        "pending_per_queue": args.pending,
        "history_s": args.history,
        "buckets_per_counter": per_queue,
        "calls": args.calls,
    }
    for metric, times, what in (
        ("get_queues_ms", http_times, "GET /v1/queues through the ASGI app (auth, handler, JSON)"),
        ("queue_statuses_ms", direct_times, "queue_domains + queue_statuses alone"),
    ):
        emit(
            metric=metric,
            value=round(1000 * statistics.median(times), 2),
            unit="ms (p50)",
            p50_ms=round(1000 * statistics.median(times), 2),
            p99_ms=round(1000 * percentile(times, 99), 2),
            min_ms=round(1000 * min(times), 2),
            target_ms=50,
            what=what,
            **common,
            **({"response_bytes": body_bytes} if metric == "get_queues_ms" else {}),
        )
    log(f"(queue windows with outbound events: {buckets} of {3 * args.queues})")


async def queue_buckets(redis: Redis, tag: str) -> int:
    return int(await redis.zcard(keys.queue_window(tag, "out")))


# --- main -----------------------------------------------------------------------------


async def run(url: str, redis_pid: int | None, args: argparse.Namespace) -> None:
    redis = runtime.connect(url)
    try:
        emit(
            metric="machine",
            **machine_fields(),
            redis=await redis_version(redis),
            loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        )
        if not args.skip_updates:
            await bench_updates(redis, redis_pid, args)
        if not args.skip_get:
            await bench_get_queues(redis, args)
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.windows", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="updates per round")
    parser.add_argument("--depth", type=int, default=100, help="calls per pipeline")
    parser.add_argument("--spread", type=int, default=100, help="queues the updates go to")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--queues", type=int, default=1000, help="queues for GET /v1/queues")
    parser.add_argument("--pending", type=int, default=2, help="pending emails per queue")
    parser.add_argument(
        "--history",
        type=int,
        default=KEEP_SECONDS,
        help=f"seconds of buckets per counter for GET /v1/queues (default {KEEP_SECONDS}: "
        "full windows, kept full; less: written once, for diagnosis)",
    )
    parser.add_argument("--calls", type=int, default=30, help="timed GET /v1/queues calls")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed calls")
    parser.add_argument("--skip-updates", action="store_true")
    parser.add_argument("--skip-get", action="store_true")
    args = parser.parse_args(argv)
    if min(args.n, args.depth, args.spread, args.rounds, args.queues, args.calls, args.history) < 1:
        parser.error("counts must be >= 1")
    with temp_redis(BENCH) as redis:
        runtime.run(run(redis.url, redis.pid, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
