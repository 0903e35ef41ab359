"""Crashes and concurrency on real processes (issue 3): an engine SIGKILLed
mid-batch loses no email and counts none twice; two engines never deliver one
email twice.

Every engine is a `mailpulse engine` subprocess against the session's Redis,
delivering to a slow MP in the test's own event loop. The MP accepts a message
only when it answers DATA, and records each accepted copy with the EHLO name of
the engine that sent it, so every copy is traced to one engine process.

Delivery is at least once, by design: an email whose DATA the MP accepted but
whose outcome the killed engine had not yet recorded is still `requesting`, and
the next engine sends it again. What must hold is that exactly those emails are
sent twice (no more, bounded by the one batch in flight), that no email is lost,
and that every record and index counts each email once.

The kills land while an engine is sending (half-way through a batch). A kill in
the few milliseconds between recording a batch's outcomes and moving its index
entries is reproduced exactly, without a timing race, by the last test.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from crash_harness import (
    Engines,
    TracingMP,
    assert_each_delivered_once,
    check_copies,
    disconnected,
    drained,
    page_all,
    requesting_now,
    submit,
    until,
)
from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.records import TRANSITION_LUA
from queue_engine.stats import read_totals

BATCH_SIZE = 100
DATA_DELAY_SECONDS = 0.02
"""How long the MP takes to answer DATA: a batch of 100 over 8 connections takes ~0.3 s."""
KILL_AFTER = 150
"""An engine is killed once the MP accepted this many of its emails: half-way through its
second batch, with DATA in flight on every connection."""
POLICY = """\
[default]
max_connections = 8
new_connections_per_minute = 100000
messages_per_connection = 20
"""
"""Limits (MAILPULSE_POLICY) that stay out of the way: 8 connections, no rate limit, and
connections short enough that two engines take turns with the slots."""


@pytest.fixture
async def slow_mp() -> AsyncIterator[TracingMP]:
    server = await TracingMP(delay=DATA_DELAY_SECONDS).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def engines(redis_url: str, slow_mp: TracingMP, tmp_path: Path) -> Iterator[Engines]:
    launcher = Engines.to(slow_mp, redis_url, tmp_path, POLICY, BATCH_SIZE)
    try:
        yield launcher
    finally:
        launcher.kill_all()


async def kill_mid_batch(
    engines: Engines, mp: TracingMP, redis: Redis, ids: list[str], helo: str
) -> set[str]:
    """SIGKILL `helo` half-way through its second batch; the emails it left unrecorded.

    Those are the emails still `requesting` once everything the dead process
    wrote to Redis has been applied (its connections are gone): among them, the
    ones the MP accepted from it must be sent again, and only those.
    """
    await until(
        lambda: mp.accepted_from[helo] >= KILL_AFTER, f"{helo} delivers {KILL_AFTER}", engines
    )
    engines.kill(helo)
    assert len(mp.seen) < len(ids), "every email was delivered before the kill"
    await until(
        lambda: disconnected(redis, helo), f"Redis drops the connections of {helo}", engines
    )
    return await requesting_now(redis, ids)


# --- the tests ---


async def test_engine_killed_mid_batch_loses_nothing_and_counts_nothing_twice(
    client, sender, redis, slow_mp, engines
):
    to = [f"user{i}@crash.example" for i in range(1000)]
    ids = await submit(client, sender.basic, to)
    tags = [keys.queue_tag(sender.api_user, "crash.example")]
    engines.start("engine-1.test", lease_seconds=2)
    unrecorded = await kill_mid_batch(engines, slow_mp, redis, ids, "engine-1.test")
    engines.start("engine-2.test", lease_seconds=2)
    await until(lambda: drained(redis, tags), "every email final", engines)
    await assert_each_delivered_once(client, sender.basic, sender.account, redis, ids, tags)
    resent = check_copies(slow_mp, dict(zip(ids, to, strict=True)), {"engine-1.test": unrecorded})
    print(f"\none kill: sent again after it {resent}; MP copies {len(slow_mp.copies)}")


async def test_repeated_kills_lose_nothing_and_count_nothing_twice(
    client, sender, redis, slow_mp, engines
):
    to = [f"user{i}@crash.example" for i in range(1000)]
    ids = await submit(client, sender.basic, to)
    tags = [keys.queue_tag(sender.api_user, "crash.example")]
    unrecorded: dict[str, set[str]] = {}
    progress = []
    # A claim takes the oldest ready emails and a dead engine's emails come back
    # newer, so each engine is killed while sending fresh mail (at about 150, 300
    # and 450 emails overall): no email is in two killed batches, none sent thrice.
    for n in (1, 2, 3):
        helo = f"engine-{n}.test"
        engines.start(helo, lease_seconds=2)
        unrecorded[helo] = await kill_mid_batch(engines, slow_mp, redis, ids, helo)
        progress.append(len(slow_mp.seen))
    engines.start("engine-4.test", lease_seconds=2)
    await until(lambda: drained(redis, tags), "every email final", engines)
    await assert_each_delivered_once(client, sender.basic, sender.account, redis, ids, tags)
    resent = check_copies(slow_mp, dict(zip(ids, to, strict=True)), unrecorded)
    print(
        f"\nthree kills at {progress} emails: sent again after each {resent};"
        f" MP copies {len(slow_mp.copies)}"
    )


async def test_two_engines_never_deliver_an_email_twice(client, sender, redis, slow_mp, engines):
    domains = [f"crash{n}.example" for n in range(4)]
    to = [f"user{i}@{domains[i % 4]}" for i in range(2000)]
    tags = [keys.queue_tag(sender.api_user, d) for d in domains]
    # Leases never run out here, so not even one email may go out twice.
    engines.start("engine-a.test", lease_seconds=60)
    engines.start("engine-b.test", lease_seconds=60)

    async def both_listening() -> bool:
        [(_, subscribers)] = await redis.pubsub_numsub(keys.WAKE_CHANNEL)
        return int(subscribers) == 2

    await until(both_listening, "both engines waiting for mail", engines)
    ids = await submit(client, sender.basic, to)
    await until(lambda: drained(redis, tags), "every email final", engines)
    await assert_each_delivered_once(client, sender.basic, sender.account, redis, ids, tags)
    check_copies(slow_mp, dict(zip(ids, to, strict=True)), {})
    assert len(slow_mp.copies) == len(ids), "an email was delivered twice"
    split = dict(slow_mp.accepted_from)
    assert set(split) == {"engine-a.test", "engine-b.test"}, split
    print(f"\ntwo engines: delivered {split}, duplicates 0")


async def test_engine_killed_between_outcome_and_index_moves_leaves_indexes_and_counts_right(
    client, sender, redis, slow_mp, engines
):
    to = [f"user{i}@crash.example" for i in range(3)]
    ids = await submit(client, sender.basic, to)
    tag = keys.queue_tag(sender.api_user, "crash.example")
    # What a dead engine leaves when SIGKILL lands between the two round trips of
    # recording a delivered batch: claimed (lease run out), outcomes applied by
    # the real transition script, indexes, queue and counters untouched.
    transition = redis.register_script(TRANSITION_LUA)
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.queue_ready(tag), *ids)
        pipe.zadd(keys.queue_lease(tag), dict.fromkeys(ids, now_ms - 1))
        await pipe.execute()
    for email_id in ids:
        fields = ["status", "delivered", "attempts", "1", "send_ms", str(now_ms)]
        fields += ["mp_reply", "250 2.0.0 Ok: queued", "billable", "1", "connected", "1"]
        fields += ["log", json.dumps([{"stage": "data", "code": 250, "outcome": "delivered"}])]
        assert await transition(keys=[keys.email(email_id)], args=["requesting", "0", *fields])
    engines.start("engine-1.test", lease_seconds=2)
    await until(lambda: drained(redis, [tag]), "the expired leases handled", engines)
    assert slow_mp.copies == []  # recorded as delivered: never sent again
    delivered = await page_all(client, sender.basic, status="delivered")
    assert sorted(item["email_id"] for item in delivered) == sorted(ids)
    assert await redis.zcard(keys.index_status(sender.account, "requesting")) == 0
    # The engine that found them final counted what the dead one could not, once.
    totals = await read_totals(redis)
    assert sum(totals.outcomes.values()) == totals.outcomes[("delivered", "", "crash.example")]
    counted = {c: n for (user, _, c), n in totals.queues.items() if user == sender.api_user}
    assert counted == {"inbound": 3, "attempted": 3, "outbound": 3}
    assert totals.outcomes[("delivered", "", "crash.example")] == 3
    window = await redis.zrange(keys.queue_window(tag, "out"), 0, -1, withscores=True)
    assert sum(int(score) % 2**20 for _, score in window) == 3
