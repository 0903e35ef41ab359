"""Sorted rate windows (SPEC Q1, Q2): inbound, attempted and outbound events per queue.

Each counter is a sorted set of per-second buckets under the queue's hash tag.
A bucket's member is the second and its score is `second * 2**20 + count`:
ZINCRBY adds to a bucket, ZREMRANGEBYSCORE trims by time, ZRANGEBYSCORE reads
a time range, and every score stays an exact integer in a double (< 2**53).
At most 31 buckets per counter exist, so memory per queue is bounded whatever
the event rate; an idle queue's windows expire. Rates are averages over the
last complete seconds: a 5 s rate at 12:00:10.4 covers 12:00:05 to 12:00:09
(snapshot.py sums them in Redis, queue_status.lua).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from queue_engine import keys

WINDOWS = (5, 15, 30)
KEEP_SECONDS = max(WINDOWS) + 1
_SCRIPT = (Path(__file__).parent / "windows.lua").read_text()


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-second averages over one window."""

    inbound: float
    attempted: float
    outbound: float


class RateWindows:
    def __init__(self, redis: Redis) -> None:
        self._count = redis.register_script(_SCRIPT)

    async def add(
        self,
        pipe: Pipeline | Redis,
        tag: str,
        now_s: int,
        *,
        inbound: int = 0,
        attempted: int = 0,
        outbound: int = 0,
    ) -> None:
        """Count events of one queue; queued on `pipe` when it is a pipeline."""
        if inbound or attempted or outbound:
            await self._count(
                keys=window_keys(tag),
                args=[now_s, KEEP_SECONDS, inbound, attempted, outbound],
                client=pipe,
            )


def window_keys(tag: str) -> list[str]:
    return [keys.queue_window(tag, name) for name in ("in", "att", "out")]
