"""Everything one scrape reads from Redis, through the engine's public API.

Nothing is kept in the web process between scrapes: every figure comes from
Redis, so each web process answers the same. When Redis does not answer, the
scrape still succeeds with `redis_up` 0, so that the alert can say so.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from queue_engine.busy_queues import QueueLoad, busy_queues
from queue_engine.domain_labels import DomainLabels
from queue_engine.exports import task_counts
from queue_engine.stats import Totals, connected_clients, read_totals
from queue_engine.suppression import Suppressions

TIMEOUT_SECONDS = 5.0
"""Under Prometheus's default scrape timeout (10 s): a slow Redis reads as down."""


@dataclass(frozen=True, slots=True)
class Readings:
    now_ms: int
    roundtrip_seconds: float
    labelled: frozenset[str]
    queues: list[QueueLoad]
    totals: Totals
    suppression_entries: dict[str, int]
    export_tasks: dict[str, int]
    websocket_clients: int


async def read(redis: Redis, top_domains: int) -> Readings | None:
    """The scrape's data, or None when Redis is unreachable or too slow."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            return await _read(redis, top_domains)
    except (RedisError, OSError, TimeoutError):
        return None


async def _read(redis: Redis, top_domains: int) -> Readings:
    started = time.perf_counter()
    await redis.ping()
    roundtrip = time.perf_counter() - started
    now_ms = int(time.time() * 1000)
    labels = DomainLabels(redis)
    # The ranking runs here, at most once per period over all processes: only a
    # scraped system needs its labels to follow the traffic.
    await labels.rebalance(top_domains, now_ms)
    labelled, queues, totals, suppression, exports, clients = await asyncio.gather(
        labels.named(),
        busy_queues(redis, now_ms),
        read_totals(redis),
        Suppressions(redis).list_sizes(),
        task_counts(redis),
        connected_clients(redis, now_ms),
    )
    return Readings(now_ms, roundtrip, labelled, queues, totals, suppression, exports, clients)
