"""What each queue looks like now (SPEC Q1 to Q5): pending, rates, pause.

One pipelined read for all the queues asked about, so the console's 5-second
tick and `GET /v1/queues` cost one round trip however many queues there are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.queues import Pause
from queue_engine.windows import WINDOWS, Rates, rates_from, read_buckets

STALE_PAUSE_MS = 2 * 86_400_000
"""A pause this old needs a person (SPEC Q5): the MP is not letting go by itself."""


@dataclass(frozen=True, slots=True)
class QueueStatus:
    api_user: str
    domain: str
    pending: int
    rates: dict[int, Rates]
    pause: Pause | None
    now_ms: int

    @property
    def paused(self) -> bool:
        return self.pause is not None and self.pause.until_ms > self.now_ms

    @property
    def stale(self) -> bool:
        pause = self.pause
        return pause is not None and self.paused and self.now_ms - pause.since_ms > STALE_PAUSE_MS

    @property
    def idle(self) -> bool:
        return (
            not self.pending
            and not self.paused
            and not any(r.inbound or r.attempted or r.outbound for r in self.rates.values())
        )


async def queue_domains(redis: Redis, api_users: Iterable[str]) -> list[tuple[str, str]]:
    names = sorted(api_users)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.smembers(keys.api_user_queues(name))
        domains = await pipe.execute()
    return [(name, d) for name, ds in zip(names, domains, strict=True) for d in sorted(ds)]


async def queue_statuses(
    redis: Redis, queues: list[tuple[str, str]], now_ms: int
) -> list[QueueStatus]:
    now_s = now_ms // 1000
    async with redis.pipeline(transaction=False) as pipe:
        for api_user, domain in queues:
            tag = keys.queue_tag(api_user, domain)
            pipe.zcard(keys.queue_ready(tag))
            pipe.zcard(keys.queue_lease(tag))
            pipe.hgetall(keys.queue_pause(tag))
            read_buckets(pipe, tag, now_s)
        replies = await pipe.execute()
    statuses = []
    per_queue = 3 + 3
    for i, (api_user, domain) in enumerate(queues):
        ready, leased, pause, *buckets = replies[i * per_queue : (i + 1) * per_queue]
        statuses.append(
            QueueStatus(
                api_user=api_user,
                domain=domain,
                pending=int(ready) + int(leased),
                rates=rates_from(buckets, now_s, WINDOWS),
                pause=Pause.from_hash(pause),
                now_ms=now_ms,
            )
        )
    return statuses
