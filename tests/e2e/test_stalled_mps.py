"""More stalled MPs than an engine drains queues at once (issue 10, point 3): a healthy
domain's mail still goes out at once. A queue whose attempts all wait on its MP
leaves the engine's cap for the slow budget (engine.py `_start_due`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from api_calls import email_record
from scrapes import send

from app.simulator import MPServer, Profile
from queue_engine.routing import Destination

STEP_TIMEOUT = 8.0
"""smtp_timeout_seconds: a stalled MP's first attempts end after this long; their queues
count as waiting on a slow MP after half of it (engine.py STALL_SECONDS)."""


@pytest.fixture
async def stalled() -> AsyncIterator[list[MPServer]]:
    """Three MPs that accept connections and never greet."""
    profiles = [Profile(name=f"stall{i}", fault="stall", fault_stage="greeting") for i in range(3)]
    servers = [await MPServer(name=p.name, profile=p).start() for p in profiles]
    yield servers
    for server in servers:
        await server.stop()


def route(server: MPServer) -> Destination:
    return Destination("127.0.0.1", server.port, f"{server.name}.mx.test")


async def test_more_stalled_mps_than_the_cap_leave_healthy_mail_its_slot(
    client, sender, mp, stalled, start_engine, wait_for
):
    routes = {f"{s.name}.example": route(s) for s in stalled} | {"*": route(mp)}
    await start_engine(
        routes=routes, smtp_timeout_seconds=STEP_TIMEOUT, max_active_queues=2, max_slow_queues=2
    )
    waiting = []
    for server in stalled:
        to = [f"u{i}@{server.name}.example" for i in range(4)]
        waiting += await send(client, sender.basic, to)

    async def cap_taken() -> bool:
        # The first two stalled queues hold the cap's two slots, their lanes all waiting.
        return [sum(s.state.connections.values()) for s in stalled] == [4, 4, 0]

    await wait_for(cap_taken)
    started = time.monotonic()
    healthy = await send(client, sender.basic, [f"u{i}@gmail.example" for i in range(20)])

    async def delivered() -> bool:
        items = [await email_record(client, sender, email_id) for email_id in healthy]
        return all(item["status"] == "delivered" for item in items)

    await wait_for(delivered, within=STEP_TIMEOUT)
    took = time.monotonic() - started
    # Out before any stalled attempt ended: their queues gave up the cap's slots while
    # still waiting, not when their attempts timed out.
    for email_id in waiting:
        item = await email_record(client, sender, email_id)
        assert item["status"] == "requesting" and item["delivery_log"] == [], item
    assert mp.state.accepted == len(healthy)
    assert took < STEP_TIMEOUT, took
    print(f"\n20 emails beside 3 stalled MPs with a cap of 2 queues: delivered in {took:.2f}s")
