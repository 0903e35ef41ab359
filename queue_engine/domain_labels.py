"""Which recipient domains get their own `domain` label in the metrics: top N, then "other".

Labels must stay few whatever the traffic, so at most N domains are named and
every other one counts as `other`. The label is chosen when an event is
counted, not when it is read: each event lands in one series for good, so every
counter only grows, even when the named set changes (a domain that joins
starts a new series; one that leaves stops growing and is no longer exported).
A domain is named on its first queued email while fewer than N are; after that
a re-ranking, at most once per REBALANCE_SECONDS by whichever process gets there
first, swaps in an outsider whose recent volume clearly exceeds the quietest
named domain's. The margin keeps two domains of equal volume from trading
places on every re-ranking.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from queue_engine import keys

OTHER = "other"
REFRESH_SECONDS = 10.0
"""How stale a process's copy of the named set may be."""
REBALANCE_SECONDS = 300
VOLUME_DAYS = 2
"""Volume is ranked over today and the day before (UTC days)."""
SWAP_FACTOR = 1.25
"""An outsider replaces the quietest named domain only with this much more volume."""
DAY_MS = 86_400_000

_SCRIPT = (Path(__file__).parent / "domain_labels.lua").read_text()


class DomainLabels:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock
        self._change = redis.register_script(_SCRIPT)
        self._named: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")

    async def named(self) -> frozenset[str]:
        if self.clock() - self._loaded_at >= REFRESH_SECONDS:
            self._remember(await self.redis.smembers(keys.METRIC_DOMAINS))
        return self._named

    async def label(self, domain: str) -> str:
        return domain if domain in await self.named() else OTHER

    async def labels(self, domains: Iterable[str]) -> dict[str, str]:
        named = await self.named()
        return {d: d if d in named else OTHER for d in domains}

    async def claim(self, domains: Iterable[str], limit: int) -> dict[str, str]:
        """Labels for domains with new mail, naming new ones while fewer than `limit` are."""
        wanted = set(domains)
        named = await self.named()
        if len(named) < limit and not wanted <= named:
            args: list[str | int] = [limit, 0, *sorted(wanted - named)]
            self._remember(await self._change(keys=[keys.METRIC_DOMAINS], args=args))
        return await self.labels(wanted)

    async def volumes(self, now_ms: int) -> dict[str, int]:
        today = now_ms // DAY_MS
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in range(today - VOLUME_DAYS + 1, today + 1):
                pipe.hgetall(keys.metric_volume(day))
            days = await pipe.execute()
        total: dict[str, int] = {}
        for day in days:
            for domain, n in day.items():
                total[domain] = total.get(domain, 0) + int(n)
        return total

    async def rebalance(self, limit: int, now_ms: int) -> bool:
        """Re-rank the named domains by volume, unless another process did it recently."""
        if not await self.redis.set(keys.METRIC_REBALANCE, "1", nx=True, ex=REBALANCE_SECONDS):
            return False
        named = set(await self.redis.smembers(keys.METRIC_DOMAINS))
        remove, add = plan(named, await self.volumes(now_ms), limit)
        if remove or add:
            args: list[str | int] = [limit, len(remove), *remove, *add]
            self._remember(await self._change(keys=[keys.METRIC_DOMAINS], args=args))
        return True

    def _remember(self, named: Iterable[str]) -> None:
        self._named = frozenset(named)
        self._loaded_at = self.clock()


def count_volume(pipe: Pipeline, volumes: Mapping[str, int], now_ms: int) -> None:
    """Add to a pipeline: emails queued per domain today, what the ranking reads."""
    key = keys.metric_volume(now_ms // DAY_MS)
    for domain, n in volumes.items():
        pipe.hincrby(key, domain, n)
    pipe.expire(key, (VOLUME_DAYS + 1) * DAY_MS // 1000)


def plan(named: set[str], volumes: Mapping[str, int], limit: int) -> tuple[list[str], list[str]]:
    """(domains to unname, domains to name) so the named set is the busiest, with a margin."""
    quietest_first = sorted(named, key=lambda d: (volumes.get(d, 0), d))
    excess = max(0, len(quietest_first) - limit)
    remove, members = quietest_first[:excess], quietest_first[excess:]
    outsiders = [d for d, n in volumes.items() if n > 0 and d not in named]
    outsiders.sort(key=lambda d: (-volumes[d], d))
    room = limit - len(members)
    add, outsiders = outsiders[:room], outsiders[room:]
    for outsider in outsiders:
        if not members or volumes[outsider] <= SWAP_FACTOR * volumes.get(members[0], 0):
            break
        remove.append(members.pop(0))
        add.append(outsider)
    return remove, add
