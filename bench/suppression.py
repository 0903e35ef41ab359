"""Suppression checks against million-entry lists, and Redis bytes per entry.

    .venv/bin/python -m bench.suppression [--entries 1000000] [--batches 200]

Fills the global bounce list and one account's custom block list with
`--entries` addresses each (through `Suppressions.add_bounces` / `add`, the
code the engine and the API use), then builds each list's filter as the
engine's periodic maintenance does, measuring Redis `used_memory` before and
after: bytes per entry, everything included (buckets, details, bucket index,
meta counts, filter).

Then times `--batches` calls of `Suppressions.check` (the send API's and the
delivery's call) for batches of `--batch` recipients, half of them on a list,
against a baseline in the same run on the same Redis: one ZMSCORE of the same
number of members on a single sorted set holding `--entries` members, the
cheapest raw lookup Redis offers. Rounds interleave ours and the baseline.

  check_recipients_per_s   recipients checked per second (target >= 100,000);
                           ratio = ours / the raw ZMSCORE baseline.
  check_recipients_per_s_concurrent
                           the same checks from `--callers` (2) callers at once.
  bytes_per_entry          Redis memory per list entry (target <= 120).

A fresh embedded Redis in a temp dir, on uvloop. JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from typing import Any

from redis.asyncio import Redis

from app import runtime
from bench.delivery import machine_fields
from bench.spine import temp_redis
from queue_engine import keys
from queue_engine.suppression import Origin, SuppressionList, Suppressions

BENCH = "suppression"
ACCOUNT = "bench"
FILL_BATCH = 5000


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "qq.com",
    "163.com",
    "hotmail.com",
    "icloud.com",
    "mail.ru",
    "gmx.de",
    "comcast.net",
)
LISTS = {"bounces": "b", "blocks": "k", "clean": "c"}


def address(list_name: str, i: int) -> str:
    """About as long as real addresses (22 characters on average here)."""
    return f"{LISTS[list_name]}.user{i}@{DOMAINS[i % len(DOMAINS)]}"


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def fill(redis: Redis, sup: Suppressions, entries: int) -> dict[str, float]:
    per_entry: dict[str, float] = {}
    for name in ("bounces", "blocks"):
        before = await used_memory(redis)
        start = time.perf_counter()
        for first in range(0, entries, FILL_BATCH):
            batch = range(first, min(first + FILL_BATCH, entries))
            if name == "bounces":
                await sup.add_bounces(
                    [(address(name, i), False, "550 5.1.1 user unknown") for i in batch],
                    Origin.MP,
                )
            else:
                await sup.add(
                    ACCOUNT,
                    SuppressionList.BLOCKS,
                    [(address(name, i), None, None, "") for i in batch],
                    Origin.API,
                )
        took = time.perf_counter() - start
        start = time.perf_counter()
        scope = keys.BOUNCE_SCOPE if name == "bounces" else keys.suppression_scope(ACCOUNT)
        built = await sup.refresh_filter(scope, SuppressionList(name))
        build = time.perf_counter() - start
        per_entry[name] = (await used_memory(redis) - before) / entries
        log(
            f"{name}: {entries:,} entries in {took:.1f}s, filter {'built' if built else 'none'}"
            f" in {build:.1f}s, {per_entry[name]:.1f} B/entry"
        )
        emit(
            metric=f"fill_{name}_per_s",
            value=round(entries / took),
            unit="entries/s",
            filter_build_s=round(build, 1),
            what=f"add {entries:,} entries in calls of {FILL_BATCH:,}, then build the "
            "list's filter (the engine's periodic maintenance)",
        )
    return per_entry


async def baseline_set(redis: Redis, entries: int) -> str:
    key = "bench:raw"
    for first in range(0, entries, FILL_BATCH):
        batch = range(first, min(first + FILL_BATCH, entries))
        await redis.zadd(key, {address("bounces", i): 1 for i in batch})
    return key


def recipients(rng: random.Random, entries: int, batch: int) -> list[str]:
    """Half on a list (bounces or blocks), half on none."""
    out = []
    for j in range(batch):
        i = rng.randrange(entries)
        if j % 2:
            out.append(address(rng.choice(("bounces", "blocks")), i))
        else:
            out.append(address("clean", i))
    return out


async def run(url: str, args: argparse.Namespace) -> None:
    redis = runtime.connect(url)
    try:
        emit(metric="machine", **machine_fields())
        sup = Suppressions(redis)
        per_entry = await fill(redis, sup, args.entries)
        raw_key = await baseline_set(redis, args.entries)
        rng = random.Random(7)
        batches = [recipients(rng, args.entries, args.batch) for _ in range(args.batches)]
        ours: list[float] = []
        raw: list[float] = []
        blocked = 0
        server_us = 0.0
        for _ in range(args.rounds):
            await redis.config_resetstat()
            start = time.perf_counter()
            for batch in batches:
                found = await sup.check(ACCOUNT, "bench-au", batch)
                blocked += sum(1 for b in found if b is not None)
            ours.append(args.batches * args.batch / (time.perf_counter() - start))
            stats = (await redis.info("commandstats"))["cmdstat_evalsha"]
            server_us += stats["usec"] / args.batches / args.rounds
            start = time.perf_counter()
            for batch in batches:
                await redis.zmscore(raw_key, batch)
            raw.append(args.batches * args.batch / (time.perf_counter() - start))
        expected = args.rounds * args.batches * args.batch // 2
        if blocked != expected:
            raise SystemExit(f"bench: {blocked} recipients blocked, expected {expected}")
        ours_rate, raw_rate = statistics.median(ours), statistics.median(raw)
        emit(
            metric="check_recipients_per_s",
            value=round(ours_rate),
            unit="recipients/s",
            baseline=round(raw_rate),
            baseline_what="one ZMSCORE per batch on one sorted set of the same size",
            ratio=round(ours_rate / raw_rate, 3),
            target=100_000,
            batch=args.batch,
            entries_per_list=args.entries,
            rounds=[round(r) for r in ours],
            redis_ms_per_check=round(server_us / 1000, 2),
            what="Suppressions.check: one Lua call for the bounce list and the account lists",
        )
        await concurrent_checks(redis, sup, raw_key, batches, args)
        emit(
            metric="bytes_per_entry",
            value=round(max(per_entry.values()), 1),
            unit="bytes",
            bounces=round(per_entry["bounces"], 1),
            blocks=round(per_entry["blocks"], 1),
            target=120,
            entries_per_list=args.entries,
            address_chars=round(
                statistics.mean(len(address("bounces", i)) for i in range(args.entries)), 1
            ),
            what="used_memory growth per entry, address stored twice (expiry set, details), "
            "the list's filter included",
        )
    finally:
        await redis.aclose()


async def concurrent_checks(
    redis: Redis, sup: Suppressions, raw_key: str, batches: list[list[str]], args: Any
) -> None:
    """The same checks from `--callers` callers at once, as the send API's requests and
    the engines' batches come: one caller leaves Redis idle while Python builds a batch
    and reads its answer; several overlap. Reported beside the one-caller figure."""

    async def caller(share: list[list[str]], check: Any) -> None:
        for batch in share:
            await check(batch)

    async def ours(batch: list[str]) -> None:
        await sup.check(ACCOUNT, "bench-au", batch)

    async def raw(batch: list[str]) -> None:
        await redis.zmscore(raw_key, batch)

    rates: dict[str, list[float]] = {"ours": [], "raw": []}
    for _ in range(args.rounds):
        for name, check in (("ours", ours), ("raw", raw)):
            start = time.perf_counter()
            await asyncio.gather(
                *(caller(batches[i :: args.callers], check) for i in range(args.callers))
            )
            rates[name].append(len(batches) * args.batch / (time.perf_counter() - start))
    ours_rate, raw_rate = statistics.median(rates["ours"]), statistics.median(rates["raw"])
    emit(
        metric="check_recipients_per_s_concurrent",
        value=round(ours_rate),
        unit="recipients/s",
        callers=args.callers,
        baseline=round(raw_rate),
        ratio=round(ours_rate / raw_rate, 3),
        rounds=[round(r) for r in rates["ours"]],
        what=f"the same checks from {args.callers} callers at once",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.suppression", description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries per list")
    parser.add_argument("--batch", type=int, default=1000, help="recipients per check")
    parser.add_argument("--batches", type=int, default=200, help="checks per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--callers", type=int, default=2, help="callers at once, second figure")
    args = parser.parse_args(argv)
    with temp_redis(BENCH) as redis:
        runtime.run(run(redis.url, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
