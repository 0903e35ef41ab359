"""What each queue looks like now (SPEC Q1 to Q5): pending, rates, pause.

One pipelined read for all the queues asked about, so the console's 5-second
tick and `GET /v1/queues` cost one round trip however many queues there are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.queues import Pause
from queue_engine.windows import WINDOWS, Rates, window_keys

_STATUS_SCRIPT = (Path(__file__).parent / "queue_status.lua").read_text()

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
    redis: Redis,
    queues: list[tuple[str, str]],
    now_ms: int,
    windows: tuple[int, ...] = WINDOWS,
) -> list[QueueStatus]:
    """One Lua call per queue: the sums are made in Redis, so only a few numbers a
    queue cross the wire instead of every per-second bucket."""
    now_s = now_ms // 1000
    windows = tuple(sorted(windows))
    script = redis.register_script(_STATUS_SCRIPT)
    args = [str(now_s), *map(str, windows)]
    async with redis.pipeline(transaction=False) as pipe:
        for i, (api_user, domain) in enumerate(queues):
            tag = keys.queue_tag(api_user, domain)
            status_keys = [keys.queue_ready(tag), keys.queue_lease(tag), keys.queue_pause(tag),
                           *window_keys(tag)]  # fmt: skip
            if i == 0:
                # Through the Script once, so the pipeline loads it if Redis lost it;
                # plain EVALSHA for the rest skips the wrapper's per-call cost.
                await script(keys=status_keys, args=args, client=pipe)
            else:
                pipe.evalsha(script.sha, len(status_keys), *status_keys, *args)
        replies = await pipe.execute() if queues else []
    statuses = []
    n = len(windows)
    for (api_user, domain), reply in zip(queues, replies, strict=True):
        ready, leased, reason, since, until, mp_reply, *sums = reply
        counts = [sums[i * n : (i + 1) * n] for i in range(3)]
        rates = {
            w: Rates(*(int(counter[j]) / w for counter in counts)) for j, w in enumerate(windows)
        }
        pause = Pause.from_hash(
            {"reason": reason, "since_ms": since, "until_ms": until, "mp_reply": mp_reply}
        )
        statuses.append(
            QueueStatus(api_user, domain, int(ready) + int(leased), rates, pause, now_ms)
        )
    return statuses
