"""The crash-safety soak (issue 10): mail through engine processes that are SIGKILLed
at random moments, then every record, index, queue and counter checked against
what the MP got. tests/reliability/test_soak.py runs it with the issue's 20,000
emails; bench/soak.py runs it after a baseline without kills and reports figures.

All mail is submitted first (through the send API), then the engines start, so
the figures are the engines' and the MP's: delivered/s from the engines' start
to the last final status. Every kill is followed at once by a replacement
engine, as a supervisor would start one. The MP accepts everything, so every
email must end `delivered`, with one recorded attempt.

What is checked (assertions, so the bench fails as loudly as the test):
- after each kill, in one MULTI snapshot: every `requesting` email sits in its
  queue (ready or leased) and everything in a queue is `requesting` or already
  final (its outcome recorded, the acknowledgement not yet made): leased, or
  ready again once the lease of the dead engine that recorded it ran out;
- at the end: each email listed once, final `delivered`, one attempt, indexes
  and queues right; the MP got every email, at most twice, each copy to its own
  recipient; an email went out twice only if the engine that first sent it died
  before recording it (the record shows another engine's sending IP);
- the rate windows (sampled every second, as buckets older than 31 s are
  trimmed), the Prometheus totals (stats.py) and the queues' pending counts
  agree with the records: inbound = emails, attempted = recorded attempts,
  outbound = delivered, pending = emails still `requesting`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from crash_harness import (
    Engines,
    TracingMP,
    assert_each_delivered_once,
    check_copies,
    disconnected,
    drained,
    submit,
    until,
)
from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.snapshot import queue_statuses
from queue_engine.stats import read_totals

POLICY = """\
[default]
max_connections = 8
new_connections_per_minute = 1000000
messages_per_connection = 100
"""
"""8 connections per engine (each has its own sending IP) and no limit in the way."""
_BUCKET = 2**20  # windows.py: a bucket's score is second * 2**20 + count
WINDOW_NAMES = ("in", "att", "out")


@dataclass(frozen=True)
class SoakPlan:
    n: int
    kills: int = 3
    seed: int = 10
    domains: int = 4
    engines: int = 2
    """Engines running at once; each kill is followed by a replacement."""
    lease_seconds: float = 3.0
    batch_size: int = 100


@dataclass(frozen=True)
class Sender:
    account: str
    api_user: str
    auth: dict[str, str]


@dataclass
class Kill:
    victim: str
    at_delivered: int
    """Unique emails the MP had accepted when the kill was decided."""
    jitter_s: float
    at: float = 0.0
    """time.monotonic() just before the SIGKILL. The MP runs in this event loop, which the
    kill blocks: a copy it accepted earlier than this was accepted before the SIGKILL."""
    replacement: str = ""
    restarted_at: float = 0.0
    recorded_unacked: int = 0
    """Emails the victim had recorded final but not yet acknowledged (nor counted): the
    next engine to claim them must count them."""


@dataclass
class SoakReport:
    plan: SoakPlan
    ids: list[str]
    submit_seconds: float
    started: float
    finished: float
    kills: list[Kill]
    progress: list[tuple[float, int]]
    """(time.monotonic(), unique emails the MP accepted), every 50 ms."""
    duplicates: int = 0
    resent: dict[str, int] = field(default_factory=dict)
    unrecorded_age_ms: list[float] = field(default_factory=list)
    """For each email sent twice: how long before the kill the MP had accepted it."""
    first_delivery_s: dict[str, float] = field(default_factory=dict)
    """Replacement engine -> seconds from its start to the first email it delivered."""
    window_totals: dict[str, int] = field(default_factory=dict)
    stats_totals: dict[str, int] = field(default_factory=dict)

    @property
    def delivered_per_s(self) -> float:
        return self.plan.n / (self.finished - self.started)


class WindowSampler:
    """Every per-second bucket of the queues' rate windows, read before it is trimmed."""

    def __init__(self, redis: Redis, tags: list[str]) -> None:
        self.redis = redis
        self.tags = tags
        self.buckets: dict[tuple[str, str, int], int] = {}
        self.longest_gap = 0.0
        self._last = time.monotonic()

    async def sample(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag in self.tags:
                for name in WINDOW_NAMES:
                    pipe.zrange(keys.queue_window(tag, name), 0, -1, withscores=True)
            replies = await pipe.execute()
        now = time.monotonic()
        self.longest_gap, self._last = max(self.longest_gap, now - self._last), now
        pairs = [(tag, name) for tag in self.tags for name in WINDOW_NAMES]
        for (tag, name), buckets in zip(pairs, replies, strict=True):
            for member, score in buckets:
                second = int(member)
                count = int(score) - second * _BUCKET
                key = (tag, name, second)
                self.buckets[key] = max(self.buckets.get(key, 0), count)

    async def run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(1.0)

    def totals(self) -> dict[str, int]:
        # 31 s of buckets are kept: a sampler that fell behind would have missed some.
        assert self.longest_gap < 20, f"window sampler stalled {self.longest_gap:.1f}s"
        found: Counter[str] = Counter()
        for (_, name, _), count in self.buckets.items():
            found[name] += count
        return {name: found[name] for name in WINDOW_NAMES}


async def _every(seconds: float, job: Callable[[], Any]) -> None:
    while True:
        job()
        await asyncio.sleep(seconds)


async def queue_snapshot(
    redis: Redis, ids: list[str], tags: list[str]
) -> tuple[dict[str, tuple[str, str]], set[str], set[str]]:
    """Status and sending IP of every email, and every queue's ready and leased ids, read
    at one instant (MULTI/EXEC: no engine writes in between)."""
    async with redis.pipeline(transaction=True) as pipe:
        for email_id in ids:
            pipe.hmget(keys.email(email_id), ["status", "sending_ip"])
        for tag in tags:
            pipe.zrange(keys.queue_ready(tag), 0, -1)
            pipe.zrange(keys.queue_lease(tag), 0, -1)
        replies = await pipe.execute()
    records = {e: (r[0], r[1] or "") for e, r in zip(ids, replies[: len(ids)], strict=True)}
    queues = replies[len(ids) :]
    ready = {e for members in queues[0::2] for e in members}
    leased = {e for members in queues[1::2] for e in members}
    return records, ready, leased


def check_queues_hold_requesting(
    records: dict[str, tuple[str, str]], ready: set[str], leased: set[str], dead_ips: set[str]
) -> set[str]:
    """Nothing stranded, nothing stale; returns the queued emails already final (recorded,
    not yet acknowledged). Such an email is leased, or back in the ready set when it was
    a dead engine's (sent from one of `dead_ips`) and that engine's lease ran out."""
    requesting = {e for e, (status, _) in records.items() if status == "requesting"}
    missing = requesting - ready - leased
    assert not missing, f"{len(missing)} requesting emails in no queue: {sorted(missing)[:3]}"
    assert not ready & leased, "an email both ready and leased"
    stale = {e for e in ready - requesting if records[e][1] not in dead_ips}
    assert not stale, f"final emails ready again: {sorted(stale)[:3]}"
    return (ready | leased) - requesting


async def check_pending(redis: Redis, sender: Sender, domains: list[str], expected: int) -> None:
    """The queues' pending counts (what /v1/queues and the console show) add up."""
    statuses = await queue_statuses(
        redis, [(sender.api_user, d) for d in domains], int(time.time() * 1000)
    )
    got = sum(s.pending for s in statuses)
    assert got == expected, f"pending {got}, records say {expected}"


async def run_soak(
    redis: Redis,
    client: httpx.AsyncClient,
    sender: Sender,
    engines: Engines,
    mp: TracingMP,
    plan: SoakPlan,
    log: Callable[[str], None],
) -> SoakReport:
    rng = random.Random(plan.seed)
    domains = [f"soak{d}.example" for d in range(plan.domains)]
    to = [f"user{i}@{domains[i % plan.domains]}" for i in range(plan.n)]
    tags = [keys.queue_tag(sender.api_user, d) for d in domains]
    sampler = WindowSampler(redis, tags)
    tasks = [asyncio.create_task(sampler.run())]
    try:
        t0 = time.monotonic()
        ids = await submit(client, sender.auth, to)
        submit_seconds = time.monotonic() - t0
        log(f"submitted {plan.n} emails in {submit_seconds:.1f}s")
        records, ready, leased = await queue_snapshot(redis, ids, tags)
        assert check_queues_hold_requesting(records, ready, leased, set()) == set()
        await check_pending(redis, sender, domains, plan.n)

        fractions = sorted(rng.uniform(0.1, 0.85) for _ in range(plan.kills))
        kills = [Kill("", int(f * plan.n), rng.uniform(0.0, 0.1)) for f in fractions]
        progress: list[tuple[float, int]] = []
        tasks.append(
            asyncio.create_task(
                _every(0.05, lambda: progress.append((time.monotonic(), len(mp.seen))))
            )
        )
        started = time.monotonic()
        for i in range(plan.engines):
            engines.start(f"engine-{i + 1}.soak", plan.lease_seconds)
        for kill in kills:
            await until(
                lambda k=kill: len(mp.seen) >= k.at_delivered,
                f"{kill.at_delivered} delivered",
                engines,
                within=120,
            )
            await asyncio.sleep(kill.jitter_s)
            # A victim that is sending, when there is one: a kill of an engine still
            # starting up proves less.
            working = [h for h in engines.alive if mp.accepted_from[h]] or engines.alive
            kill.victim = rng.choice(sorted(working))
            kill.at = time.monotonic()  # the event loop (and so the MP) waits for the kill
            engines.kill(kill.victim)
            kill.replacement = f"engine-{len(engines.procs) + 1}.soak"
            engines.start(kill.replacement, plan.lease_seconds)
            kill.restarted_at = time.monotonic()
            log(
                f"kill at {len(mp.seen)}/{plan.n} delivered (planned {kill.at_delivered}"
                f" + {kill.jitter_s * 1000:.0f} ms): SIGKILL {kill.victim},"
                f" started {kill.replacement}"
            )
            await until(
                lambda k=kill: disconnected(redis, k.victim), f"{kill.victim} gone", engines
            )
            records, ready, leased = await queue_snapshot(redis, ids, tags)
            dead_ips = {engines.ips[helo] for helo in engines.killed}
            final = check_queues_hold_requesting(records, ready, leased, dead_ips)
            victim_ip = engines.ips[kill.victim]
            kill.recorded_unacked = sum(1 for e in final if records[e][1] == victim_ip)
        await until(lambda: drained(redis, tags), "every email final", engines, within=300)
        finished = time.monotonic()
        await sampler.sample()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    log(f"all {plan.n} final {finished - started:.1f}s after the engines started")
    report = SoakReport(plan, ids, submit_seconds, started, finished, kills, progress)
    await _check_end(redis, client, sender, engines, mp, report, to, tags, domains, sampler)
    return report


async def _check_end(
    redis: Redis,
    client: httpx.AsyncClient,
    sender: Sender,
    engines: Engines,
    mp: TracingMP,
    report: SoakReport,
    to: list[str],
    tags: list[str],
    domains: list[str],
    sampler: WindowSampler,
) -> None:
    ids = report.ids
    items = await assert_each_delivered_once(client, sender.auth, sender.account, redis, ids, tags)
    await check_pending(redis, sender, domains, 0)
    ip_of = {ip: helo for helo, ip in engines.ips.items()}
    recorded_by = {item["email_id"]: ip_of.get(item["sending_ip"], "?") for item in items}
    # An email a killed engine sent went out again exactly when its record names
    # another engine: the victim died before recording it.
    unrecorded: dict[str, set[str]] = defaultdict(set)
    for copy in mp.copies:
        if copy.helo in engines.killed and recorded_by[copy.email_id] != copy.helo:
            unrecorded[copy.helo].add(copy.email_id)
    for kill in report.kills:
        unrecorded.setdefault(kill.victim, set())
    in_flight = report.plan.batch_size * report.plan.domains
    report.resent = check_copies(mp, dict(zip(ids, to, strict=True)), unrecorded, in_flight)
    report.duplicates = sum(report.resent.values())
    killed_at = {k.victim: k.at for k in report.kills}
    first_copy: dict[str, float] = {}
    for copy in mp.copies:
        first_copy.setdefault(copy.email_id, copy.at)
        if copy.helo in killed_at and copy.email_id in unrecorded[copy.helo]:
            report.unrecorded_age_ms.append(1000 * (killed_at[copy.helo] - copy.at))
    for kill in report.kills:
        mine = [c.at for c in mp.copies if c.helo == kill.replacement]
        if mine:
            report.first_delivery_s[kill.replacement] = min(mine) - kill.restarted_at

    # Counters against the records, exactly: an outcome a killed engine recorded but had
    # not counted yet (recorded_unacked) is counted by the engine that finds it final.
    attempts = sum(int(item["attempts"]) for item in items)
    delivered = sum(1 for item in items if item["status"] == "delivered")
    expected = {"in": len(ids), "att": attempts, "out": delivered}
    report.window_totals = sampler.totals()
    assert report.window_totals == expected, (report.window_totals, expected)
    totals = await read_totals(redis)
    by_counter: Counter[str] = Counter()
    for (api_user, _, counter), n in totals.queues.items():
        if api_user == sender.api_user:
            by_counter[counter] += n
    outcomes: Counter[str] = Counter()
    for (status, _, _), n in totals.outcomes.items():
        outcomes[status] += n
    report.stats_totals = dict(by_counter) | {f"outcomes_{s}": n for s, n in outcomes.items()}
    assert by_counter == Counter(
        inbound=expected["in"], attempted=expected["att"], outbound=expected["out"]
    ), (by_counter, expected)
    assert outcomes == Counter(delivered=expected["out"]), outcomes
