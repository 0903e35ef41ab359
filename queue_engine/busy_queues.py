"""Pending mail and pauses of every busy queue, many queues a call (the metrics scrape).

`queues:due` holds every queue with mail waiting, leased or paused, and an idle
queue drops out of it, so reading only those keeps a scrape's cost with the
busy queues, not with every queue ever used. On one Redis a Lua call reads
CHUNK queues at once; on Redis Cluster a call may only touch keys of one hash
slot, so the queues are grouped by slot there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from queue_engine import keys

CHUNK = 1000
_SCRIPT = (Path(__file__).parent / "busy_queues.lua").read_text()


@dataclass(frozen=True, slots=True)
class QueueLoad:
    api_user: str
    domain: str
    pending: int
    pause_reason: str
    """The reason of the pause in force, "" when the queue is not paused."""
    pause_since_ms: int


async def busy_queues(redis: Redis, now_ms: int) -> list[QueueLoad]:
    tags: list[str] = await redis.zrange(keys.QUEUES_DUE, 0, -1)
    groups = _by_slot(tags) if isinstance(redis, RedisCluster) else _chunks(tags)
    script = redis.register_script(_SCRIPT)
    async with redis.pipeline(transaction=False) as pipe:
        for group in groups:
            group_keys = [key for tag in group for key in keys.queue_keys(tag)]
            await script(keys=group_keys, args=[now_ms], client=pipe)
        replies = await pipe.execute() if groups else []
    loads = []
    for group, reply in zip(groups, replies, strict=True):
        for tag, pending, reason, since in zip(
            group, reply[0::3], reply[1::3], reply[2::3], strict=True
        ):
            api_user, domain = keys.split_queue_tag(tag)
            loads.append(QueueLoad(api_user, domain, pending, reason, int(since or 0)))
    return loads


def _chunks(tags: list[str]) -> list[list[str]]:
    return [tags[i : i + CHUNK] for i in range(0, len(tags), CHUNK)]


def _by_slot(tags: list[str]) -> list[list[str]]:
    slots: dict[int, list[str]] = defaultdict(list)
    for tag in tags:
        slots[key_slot(keys.queue_ready(tag).encode())].append(tag)
    return [group[i : i + CHUNK] for group in slots.values() for i in range(0, len(group), CHUNK)]
