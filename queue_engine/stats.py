"""Running totals for Prometheus, kept in Redis so that every process adds to the same ones.

The rate windows (windows.py) say how fast a queue moves now; these totals say
how much ever moved, which is what Prometheus's rate() needs: they survive
engine restarts and add up over all engine and web processes, so any web
process reports the same numbers. They are counted in the pipelines that
already record each event, and only for what happened: an outcome counts when
its transition applied, never for a redelivered one. Domains are counted under
their metric label (domain_labels.py), so the number of fields stays bounded
however many domains there are. The label is looked up first (it may read
Redis, domain_labels.py); counting then only queues commands on the pipeline.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from queue_engine import keys
from queue_engine.domain_labels import count_volume

QUEUE_COUNTERS = ("inbound", "attempted", "outbound")

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the SMTP attempt histogram; one more bucket holds the rest."""

CLIENTS_FRESH_MS = 30_000
"""A web process that has not reported its websocket clients for this long is gone."""


@dataclass(frozen=True, slots=True)
class Histogram:
    counts: tuple[int, ...]
    """Observations per bucket of DURATION_BUCKETS, then those above the last bound."""
    sum: float


@dataclass(frozen=True, slots=True)
class Totals:
    queues: dict[tuple[str, str, str], int]
    """(api_user, domain label, one of QUEUE_COUNTERS) → emails (attempts for "attempted")."""
    outcomes: dict[tuple[str, str, str], int]
    """(status, reason or "", domain label) → emails that reached that status."""
    spam_reports: dict[str, int]
    """Domain label → emails reported as spam."""
    smtp_seconds: dict[str, Histogram]
    """Attempt outcome (delivered, temporary, permanent) → how long the attempts took."""


def count_inbound(
    pipe: Pipeline, queued: Mapping[str, int], labels: Mapping[str, str], now_ms: int
) -> None:
    """Emails entering queues (queue tag → emails), under their domains' `labels`."""
    volumes: dict[str, int] = defaultdict(int)
    for tag, n in queued.items():
        api_user, domain = keys.split_queue_tag(tag)
        pipe.hincrby(keys.METRIC_QUEUE_TOTALS, _queue_field(api_user, labels[domain], 0), n)
        volumes[domain] += n
    count_volume(pipe, volumes, now_ms)


def count_outcomes(pipe: Pipeline, outcomes: Mapping[tuple[str, str, str], int]) -> None:
    """Emails that reached a final status: (status, reason or "", domain label) → emails."""
    for (status, reason, label), n in outcomes.items():
        pipe.hincrby(keys.METRIC_OUTCOMES, f"{status}|{reason}|{label}", n)


def count_attempts(
    pipe: Pipeline,
    api_user: str,
    label: str,
    outcomes: Sequence[str],
    seconds: Sequence[float],
    outbound: int,
) -> None:
    """One batch's SMTP attempts (outcome and duration of each), and the emails MPs accepted."""
    count_sent(pipe, api_user, label, len(outcomes), outbound)
    # Counted by Counter, map and compress, in C: no Python loop per attempt.
    bucket_of = functools.partial(bisect.bisect_left, DURATION_BUCKETS)
    buckets = Counter(zip(outcomes, map(bucket_of, seconds), strict=True))
    for (outcome, index), n in buckets.items():
        pipe.hincrby(keys.METRIC_SMTP_SECONDS, f"{outcome}|{index}", n)
    for outcome in set(outcomes):
        total = sum(itertools.compress(seconds, map(outcome.__eq__, outcomes)))
        pipe.hincrby(keys.METRIC_SMTP_SECONDS, f"{outcome}|sum_us", round(total * 1_000_000))


def count_sent(pipe: Pipeline, api_user: str, label: str, attempted: int, outbound: int) -> None:
    """SMTP attempts and emails MPs accepted, without durations: for count_attempts, and
    for what an engine recorded but died before counting (another counts it when it
    finds the emails final; the durations died with it, so the histogram misses them)."""
    for index, n in ((1, attempted), (2, outbound)):
        if n:
            pipe.hincrby(keys.METRIC_QUEUE_TOTALS, _queue_field(api_user, label, index), n)


def count_spam_report(pipe: Pipeline, label: str) -> None:
    pipe.hincrby(keys.METRIC_SPAM_REPORTS, label, 1)


_TOTALS_KEYS = (
    keys.METRIC_QUEUE_TOTALS,
    keys.METRIC_OUTCOMES,
    keys.METRIC_SPAM_REPORTS,
    keys.METRIC_SMTP_SECONDS,
)


def _queue_field(api_user: str, label: str, counter: int) -> str:
    return f"{api_user}/{label}|{QUEUE_COUNTERS[counter]}"


async def read_totals(redis: Redis) -> Totals:
    async with redis.pipeline(transaction=False) as pipe:
        for key in _TOTALS_KEYS:
            pipe.hgetall(key)
        queues_raw, outcomes_raw, spam_raw, seconds_raw = await pipe.execute()
    queues = {}
    for name, n in queues_raw.items():
        queue, _, counter = name.rpartition("|")
        api_user, _, label = queue.partition("/")
        queues[(api_user, label, counter)] = int(n)
    outcomes = {}
    for name, n in outcomes_raw.items():
        status, reason, label = name.split("|", 2)
        outcomes[(status, reason, label)] = int(n)
    counts: dict[str, list[int]] = {}
    sums: dict[str, int] = defaultdict(int)
    for name, n in seconds_raw.items():
        outcome, _, part = name.partition("|")
        bucket_counts = counts.setdefault(outcome, [0] * (len(DURATION_BUCKETS) + 1))
        if part == "sum_us":
            sums[outcome] = int(n)
        else:
            bucket_counts[int(part)] = int(n)
    histograms = {o: Histogram(tuple(c), sums[o] / 1_000_000) for o, c in counts.items()}
    spam = {label: int(n) for label, n in spam_raw.items()}
    return Totals(queues, outcomes, spam, histograms)


async def report_clients(redis: Redis, process: str, clients: int, now_ms: int) -> None:
    """One web process's connected websocket clients, refreshed well within CLIENTS_FRESH_MS."""
    await redis.hset(keys.METRIC_WS_CLIENTS, process, f"{clients}:{now_ms}")


async def connected_clients(redis: Redis, now_ms: int) -> int:
    """Websocket clients over every live web process; reports of dead ones are dropped."""
    total = 0
    gone = []
    for process, value in (await redis.hgetall(keys.METRIC_WS_CLIENTS)).items():
        clients, _, at_ms = value.partition(":")
        if now_ms - int(at_ms) > CLIENTS_FRESH_MS:
            gone.append(process)
        else:
            total += int(clients)
    if gone:
        await redis.hdel(keys.METRIC_WS_CLIENTS, *gone)
    return total
