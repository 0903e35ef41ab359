"""One Lua script run for many keys in a single round trip.

redis-py's `Script`, called on a pipeline, first asks Redis `SCRIPT EXISTS`: a
second round trip for every pipeline. Where a write's latency matters (an
email's final status, a tracking event a request waits for), plain EVALSHA is
sent instead, and the script is loaded only when Redis answers NOSCRIPT (it
lost its scripts in a restart). A cluster client sends the text instead
(app/redis_cluster.py), so no node ever answers NOSCRIPT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Call = tuple[Sequence[str], Sequence[str]]
"""The keys and the arguments of one run."""


class Batched:
    """A Lua script to run many times per round trip."""

    def __init__(self, redis: Redis, text: str) -> None:
        self.redis = redis
        self.text = text
        # Registered, so a cluster client knows its text (it sends EVAL).
        self.sha = redis.register_script(text).sha

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """Each call's reply, or the exception Redis answered it with, in order."""
        if not calls:
            return []
        replies = await self._evalsha(calls)
        lost = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if lost:
            await self.redis.script_load(self.text)
            again = await self._evalsha([calls[i] for i in lost])
            for i, reply in zip(lost, again, strict=True):
                replies[i] = reply
        return replies

    async def _evalsha(self, calls: Sequence[Call]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for call_keys, args in calls:
                pipe.evalsha(self.sha, len(call_keys), *call_keys, *args)
            return list(await pipe.execute(raise_on_error=False))
