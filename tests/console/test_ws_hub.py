"""The hub computes one tick per account per interval, however many clients listen, and
gives each client the delta or, when it has nothing yet or fell behind, the full state."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from web.ws_hub import Feed, Hub, Tick


async def test_one_computation_per_account_per_tick_shared_by_every_client(wait_for):
    calls: Counter[str] = Counter()

    async def produce(feed: Feed) -> Tick:
        calls[feed.account] += 1
        return Tick((f"{feed.account} #{calls[feed.account]}",), ())

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
                received.setdefault(i, []).extend(feed.tick.full)

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


async def test_a_client_gets_the_delta_only_when_it_holds_the_version_before():
    async def produce(feed: Feed) -> Tick:
        n = feed.state["n"] = feed.state.get("n", 0) + 1
        return Tick((f"everything as of {n}",), (f"changes {n - 1} -> {n}",))

    hub = Hub(produce, tick_seconds=3600)
    async with hub.subscribe("acme") as feed:
        assert feed.version == 1
        assert feed.frames_after(0) == ("everything as of 1",)  # the page's own render only
        await hub.refresh("acme")
        assert feed.frames_after(1) == ("changes 1 -> 2",)
        await hub.refresh("acme")
        assert feed.frames_after(2) == ("changes 2 -> 3",)
        assert feed.frames_after(1) == ("everything as of 3",)  # skipped a version
        assert feed.frames_after(0) == ("everything as of 3",)
    await hub.aclose()
