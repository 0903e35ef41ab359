"""Metric families from one scrape's readings, with the domain label capped.

Queue gauges are summed per (API_USER, domain label): a domain without its own
label adds to `other`. Counters are already stored under their label (the
engine chose it when counting, so they never go down); only series of the
labels in force are shown, so the number of series stays bounded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import Metric

from prometheus import metrics
from prometheus.readings import Readings
from queue_engine.domain_labels import OTHER
from queue_engine.stats import DURATION_BUCKETS, QUEUE_COUNTERS

_QUEUE_COUNTERS = dict(
    zip(
        QUEUE_COUNTERS,
        (metrics.QUEUE_INBOUND, metrics.QUEUE_ATTEMPTED, metrics.QUEUE_OUTBOUND),
        strict=True,
    )
)
_BOUNDS = [f"{bound:g}" for bound in DURATION_BUCKETS] + ["+Inf"]


def families(readings: Readings | None) -> Iterator[Metric]:
    up = metrics.REDIS_UP.family()
    up.add_metric([], 0 if readings is None else 1)
    yield up
    if readings is None:
        return
    roundtrip = metrics.REDIS_ROUNDTRIP.family()
    roundtrip.add_metric([], readings.roundtrip_seconds)
    yield roundtrip
    shown = readings.labelled | {OTHER}
    yield from _queues(readings, shown)
    yield from _outcomes(readings, shown)
    yield _histogram(readings)
    yield from _gauges(readings)


def _queues(readings: Readings, shown: frozenset[str]) -> Iterator[Metric]:
    def label(domain: str) -> str:
        return domain if domain in readings.labelled else OTHER

    pending: dict[tuple[str, str], int] = defaultdict(int)
    paused: dict[tuple[str, str, str], int] = defaultdict(int)
    age: dict[tuple[str, str, str], float] = defaultdict(float)
    for q in readings.queues:
        key = (q.api_user, label(q.domain))
        pending[key] += q.pending
        if q.pause_reason:
            reason_key = (*key, q.pause_reason)
            paused[reason_key] += 1
            age[reason_key] = max(age[reason_key], (readings.now_ms - q.pause_since_ms) / 1000)
    counters = {spec: spec.family() for spec in _QUEUE_COUNTERS.values()}
    for (api_user, domain, counter), n in sorted(readings.totals.queues.items()):
        if domain in shown:
            counters[_QUEUE_COUNTERS[counter]].add_metric([api_user, domain], n)
            pending.setdefault((api_user, domain), 0)  # a quiet queue shows 0, not nothing
    pending_family = metrics.QUEUE_PENDING.family()
    for key, n in sorted(pending.items()):
        pending_family.add_metric(list(key), n)
    paused_family = metrics.QUEUE_PAUSED.family()
    age_family = metrics.QUEUE_PAUSE_AGE.family()
    for reason_key, n in sorted(paused.items()):
        paused_family.add_metric(list(reason_key), n)
        age_family.add_metric(list(reason_key), age[reason_key])
    busy = metrics.BUSY_QUEUES.family()
    busy.add_metric([], len(readings.queues))
    yield from (pending_family, paused_family, age_family, *counters.values(), busy)


def _outcomes(readings: Readings, shown: frozenset[str]) -> Iterator[Metric]:
    outcomes = metrics.OUTCOMES.family()
    for (status, reason, domain), n in sorted(readings.totals.outcomes.items()):
        if domain in shown:
            outcomes.add_metric([status, reason, domain], n)
    spam = metrics.SPAM_REPORTS.family()
    for domain, n in sorted(readings.totals.spam_reports.items()):
        if domain in shown:
            spam.add_metric([domain], n)
    labelled = metrics.LABELLED_DOMAINS.family()
    labelled.add_metric([], len(readings.labelled))
    yield from (outcomes, spam, labelled)


def _histogram(readings: Readings) -> Metric:
    family = metrics.SMTP_DURATION.family()
    for outcome, histogram in sorted(readings.totals.smtp_seconds.items()):
        cumulative, buckets = 0, []
        for bound, n in zip(_BOUNDS, histogram.counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        family.add_metric([outcome], buckets, histogram.sum)
    return family


def _gauges(readings: Readings) -> Iterator[Metric]:
    for spec, values in (
        (metrics.SUPPRESSION_ENTRIES, readings.suppression_entries),
        (metrics.EXPORT_TASKS, readings.export_tasks),
    ):
        family = spec.family()
        for name, n in sorted(values.items()):
            family.add_metric([name], n)
        yield family
    clients = metrics.WEBSOCKET_CLIENTS.family()
    clients.add_metric([], readings.websocket_clients)
    yield clients
