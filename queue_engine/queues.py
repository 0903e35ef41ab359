"""Per-(API_USER, domain) queues: a ready set, leases, and the due index engines poll.

The ready and lease sets of a queue share a hash tag, so claiming and
requeueing are single Lua calls that stay atomic on Redis Cluster. The global
`queues:due` index is only a hint for which queue to look at next; the
reconciler rebuilds it from the queues themselves, so a lost update there
delays mail by at most one reconcile period and never loses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from queue_engine import keys
from queue_engine.statuses import PauseReason
from queue_engine.windows import RateWindows

_HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Claim:
    email_ids: list[str]
    next_due_ms: int | None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Pause:
    reason: PauseReason
    since_ms: int
    until_ms: int
    mp_reply: str

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Pause | None:
        if not raw.get("until_ms"):
            return None
        return cls(
            PauseReason(raw["reason"]),
            int(raw["since_ms"]),
            int(raw["until_ms"]),
            raw.get("mp_reply", ""),
        )


class QueueStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.windows = RateWindows(redis)
        self._claim = redis.register_script((_HERE / "claim.lua").read_text())
        self._requeue = redis.register_script((_HERE / "requeue.lua").read_text())
        self._pause = redis.register_script((_HERE / "pause.lua").read_text())

    async def enqueue(self, pipe: Pipeline, tag: str, email_ids: list[str], now_ms: int) -> None:
        """Add to a pipeline: new emails ready now, counted in the inbound window."""
        if not email_ids:
            return
        pipe.zadd(keys.queue_ready(tag), dict.fromkeys(email_ids, now_ms))
        pipe.zadd(keys.QUEUES_DUE, {tag: now_ms}, lt=True)
        pipe.sadd(keys.QUEUES_KNOWN, tag)
        api_user, domain = keys.split_queue_tag(tag)
        pipe.sadd(keys.api_user_queues(api_user), domain)
        await self.windows.add(pipe, tag, now_ms // 1000, inbound=len(email_ids))

    async def claim(self, tag: str, now_ms: int, lease_ms: int, limit: int) -> Claim:
        ids, due, paused = await self._claim(
            keys=[keys.queue_ready(tag), keys.queue_lease(tag), keys.queue_pause(tag)],
            args=[now_ms, now_ms + lease_ms, limit],
        )
        if paused:
            # The due hint goes to the pause's end as is: set_due would pull it back to
            # the waiting mail's due time and the engines would spin on a paused queue.
            await self.redis.zadd(keys.QUEUES_DUE, {tag: int(due)})
        return Claim(list(ids), int(due) if due else None, bool(paused))

    def ack(self, pipe: Pipeline, tag: str, email_ids: list[str]) -> None:
        if email_ids:
            pipe.zrem(keys.queue_lease(tag), *email_ids)

    async def requeue(self, pipe: Pipeline, tag: str, due: dict[str, int]) -> None:
        if not due:
            return
        args: list[str | int] = []
        for email_id, due_ms in due.items():
            args += [due_ms, email_id]
        await self._requeue(
            keys=[keys.queue_ready(tag), keys.queue_lease(tag)], args=args, client=pipe
        )
        pipe.zadd(keys.QUEUES_DUE, {tag: min(due.values())}, lt=True)

    async def pause(
        self, tag: str, reason: PauseReason, now_ms: int, until_ms: int, mp_reply: str = ""
    ) -> int:
        """Hold the queue until until_ms (a longer pause already there wins); returns its end."""
        end = await self._pause(
            keys=[keys.queue_pause(tag)], args=[reason.value, now_ms, until_ms, mp_reply]
        )
        await self.redis.zadd(keys.QUEUES_DUE, {tag: int(end)})
        return int(end)

    async def resume(self, tag: str, now_ms: int) -> bool:
        """End the pause now and wake the engines; False if the queue was not paused."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.queue_pause(tag))
            pipe.zadd(keys.QUEUES_DUE, {tag: now_ms})
            deleted, _ = await pipe.execute()
        # Published only once the pause is gone: on a cluster a pipeline's writes to
        # different nodes land in no set order, and an early wake-up finds nothing.
        await self.redis.publish(keys.WAKE_CHANNEL, "resume")
        return bool(deleted)

    async def get_pause(self, tag: str) -> Pause | None:
        return Pause.from_hash(await self.redis.hgetall(keys.queue_pause(tag)))

    async def set_due(self, tag: str, due_ms: int | None) -> None:
        """Move the queue's due hint to due_ms (None: nothing left), without losing a wake-up.

        An enqueue between our claim and this write lowered the hint; writing
        ours over it would delay that mail, so the ready set is read again
        afterwards and the hint lowered back if needed.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            if due_ms is None:
                pipe.zrem(keys.QUEUES_DUE, tag)
            else:
                pipe.zadd(keys.QUEUES_DUE, {tag: due_ms})
            pipe.zrange(keys.queue_ready(tag), 0, 0, withscores=True)
            _, first = await pipe.execute()
        if first and (due_ms is None or first[0][1] < due_ms):
            await self.redis.zadd(keys.QUEUES_DUE, {tag: int(first[0][1])}, lt=True)

    async def due_queues(self, now_ms: int, limit: int = 100) -> list[str]:
        return list(await self.redis.zrangebyscore(keys.QUEUES_DUE, "-inf", now_ms, 0, limit))

    async def next_due_ms(self) -> int | None:
        first = await self.redis.zrange(keys.QUEUES_DUE, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def pending(self, tag: str) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.queue_ready(tag))
            pipe.zcard(keys.queue_lease(tag))
            ready, leased = await pipe.execute()
        return int(ready) + int(leased)

    async def reconcile(self) -> int:
        """Rebuild `queues:due` from every known queue; returns how many queues have mail."""
        tags = sorted(await self.redis.smembers(keys.QUEUES_KNOWN))
        busy = 0
        for start in range(0, len(tags), 500):
            chunk = tags[start : start + 500]
            async with self.redis.pipeline(transaction=False) as pipe:
                for tag in chunk:
                    pipe.zrange(keys.queue_ready(tag), 0, 0, withscores=True)
                    pipe.zrange(keys.queue_lease(tag), 0, 0, withscores=True)
                firsts = await pipe.execute()
            async with self.redis.pipeline(transaction=False) as pipe:
                for i, tag in enumerate(chunk):
                    scores = [int(s) for first in firsts[2 * i : 2 * i + 2] for _, s in first]
                    if scores:
                        busy += 1
                        pipe.zadd(keys.QUEUES_DUE, {tag: min(scores)})
                    else:
                        pipe.zrem(keys.QUEUES_DUE, tag)
                await pipe.execute()
        return busy
