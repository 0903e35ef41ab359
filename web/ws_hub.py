"""Fan-out of live frames to websocket clients: one computation per account per tick.

Each account with at least one connected client has a `Feed` holding the
latest `Tick`. A single ticker task asks the producer for every such
account's tick once per tick interval and publishes it; each client's sender
waits for a newer version and sends the same strings, so a thousand open
consoles cost one Redis read and one render per account, not a thousand.

A tick comes in two forms, both made once for everyone: the delta (what
changed since the previous version) and the full state. A client that holds
the previous version gets the delta, which on a quiet tick is a small part of
the page; one that has just come, or that was too slow and skipped versions,
gets the full state, so skipping never leaves a page wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Frames = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    full: Frames
    """The whole state, for a client that has nothing yet or fell behind."""
    delta: Frames
    """Turns the previous version's state into this one."""


Producer = Callable[["Feed"], Awaitable[Tick]]
"""Computes an account's tick; it keeps what the next delta is taken against on
`feed.state` (the hub calls it under `feed.lock` and publishes every result)."""

DEFAULT_TICK_SECONDS = 5.0


class Feed:
    def __init__(self, account: str) -> None:
        self.account = account
        self.tick = Tick((), ())
        self.version = 0
        self.clients = 0
        self.state: dict[str, Any] = {}
        self.lock = asyncio.Lock()
        self._changed = asyncio.Event()

    def publish(self, tick: Tick) -> None:
        self.tick = tick
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def newer_than(self, version: int) -> None:
        changed = self._changed
        if self.version == version:
            await changed.wait()

    def frames_after(self, version: int) -> Frames:
        """What a client that shows `version` (0: only the page's own render) needs
        to show the latest one."""
        if version and version == self.version - 1:
            return self.tick.delta
        return self.tick.full


class Hub:
    def __init__(self, produce: Producer, tick_seconds: float = DEFAULT_TICK_SECONDS) -> None:
        self.produce = produce
        self.tick_seconds = tick_seconds
        self.feeds: dict[str, Feed] = {}
        self._ticker: asyncio.Task[None] | None = None

    @property
    def connected(self) -> int:
        """Websocket clients connected to this process (the Prometheus gauge reads it)."""
        return sum(feed.clients for feed in self.feeds.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, account: str) -> AsyncIterator[Feed]:
        feed = self.feeds.get(account)
        if feed is None:
            feed = self.feeds[account] = Feed(account)
        feed.clients += 1
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        try:
            async with feed.lock:
                if not feed.version:
                    feed.publish(await self.produce(feed))
            yield feed
        finally:
            feed.clients -= 1
            if not feed.clients and self.feeds.get(account) is feed:
                del self.feeds[account]

    async def refresh(self, account: str) -> None:
        """Publish at once (after a Resume), without waiting for the next tick."""
        feed = self.feeds.get(account)
        if feed is not None:
            async with feed.lock:
                feed.publish(await self.produce(feed))

    async def _tick(self) -> None:
        try:
            while self.feeds:
                # On the tick grid, so every process and every page ticks together.
                now = time.time()
                await asyncio.sleep(self.tick_seconds - now % self.tick_seconds)
                await asyncio.gather(*(self._publish(feed) for feed in list(self.feeds.values())))
        finally:
            self._ticker = None

    async def _publish(self, feed: Feed) -> None:
        try:
            async with feed.lock:
                feed.publish(await self.produce(feed))
        except (RedisError, OSError) as exc:
            # Clients keep the last frames; the next tick tries again.
            log.warning("queue snapshot for %s failed: %s", feed.account, exc)

    async def aclose(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
