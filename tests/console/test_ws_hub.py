"""The hub computes one snapshot per account per tick, however many clients listen."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from web.ws_hub import Feed, Frames, Hub


async def test_one_computation_per_account_per_tick_shared_by_every_client(wait_for):
    calls: Counter[str] = Counter()

    async def produce(feed: Feed) -> Frames:
        calls[feed.account] += 1
        return (f"{feed.account} #{calls[feed.account]}",)

    hub = Hub(produce, tick_seconds=0.05)
    received: dict[int, list[str]] = {}
    async with contextlib.AsyncExitStack() as stack:
        feeds = [
            await stack.enter_async_context(hub.subscribe("acme" if i % 10 else "other"))
            for i in range(50)
        ]
        assert hub.connected == 50

        async def listen(i: int, feed: Feed) -> None:
            version = 0
            while True:
                await feed.newer_than(version)
                version = feed.version
                received.setdefault(i, []).extend(feed.frames)

        listeners = [asyncio.create_task(listen(i, f)) for i, f in enumerate(feeds)]

        async def five_ticks() -> bool:
            return calls["acme"] >= 5

        await wait_for(five_ticks)
        for task in listeners:
            task.cancel()
        # One call at the first subscription, then one a tick: never one per client.
        assert calls["acme"] <= hub.feeds["acme"].version
        assert calls["other"] <= hub.feeds["other"].version
        assert received[0] and all(frame.startswith("other") for frame in received[0])
        assert received[1] and all(frame.startswith("acme") for frame in received[1])
    assert hub.connected == 0 and hub.feeds == {}
    await wait_for(lambda: _stopped(hub))


async def _stopped(hub: Hub) -> bool:
    return hub._ticker is None
