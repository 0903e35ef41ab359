"""Queues, leases and idempotent outcomes on a real Redis."""

from __future__ import annotations

import time

from queue_engine import keys
from queue_engine.delivery import Deliverer
from queue_engine.limits import Limiter
from queue_engine.queues import QueueStore
from queue_engine.routing import Destination, Router
from queue_engine.smtp_client import SmtpPool

TAG = keys.queue_tag("acme-tx", "gmail.example")


async def _enqueue(redis, ids: list[str], due_ms: int) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        await QueueStore(redis).enqueue(pipe, TAG, ids, due_ms)
        await pipe.execute()


async def test_claim_leases_and_expired_leases_come_back(redis):
    store = QueueStore(redis)
    await _enqueue(redis, ["a", "b", "c"], 1000)
    assert await store.due_queues(1000) == [TAG]
    claim = await store.claim(TAG, now_ms=1000, lease_ms=500, limit=2)
    assert claim.email_ids == ["a", "b"]
    assert claim.next_due_ms == 1000  # "c" is still ready
    assert await store.pending(TAG) == 3
    assert (await store.claim(TAG, 1000, 500, 10)).email_ids == ["c"]
    # Nothing is ready until the leases run out; then the dead worker's emails return.
    nothing = await store.claim(TAG, 1400, 500, 10)
    assert nothing.email_ids == [] and nothing.next_due_ms == 1500
    again = await store.claim(TAG, 1501, 500, 10)
    assert sorted(again.email_ids) == ["a", "b", "c"]


async def test_requeue_moves_only_what_is_still_leased(redis):
    store = QueueStore(redis)
    await _enqueue(redis, ["a", "b"], 1000)
    await store.claim(TAG, 1000, 500, 10)
    async with redis.pipeline(transaction=False) as pipe:
        store.ack(pipe, TAG, ["b"])
        await store.requeue(pipe, TAG, {"a": 5000, "b": 5000})
        await pipe.execute()
    assert await redis.zrange(keys.queue_ready(TAG), 0, -1, withscores=True) == [("a", 5000.0)]
    assert await redis.zcard(keys.queue_lease(TAG)) == 0


async def test_reconcile_repairs_a_lost_due_hint(redis):
    store = QueueStore(redis)
    await _enqueue(redis, ["a"], 1000)
    await redis.delete(keys.QUEUES_DUE)
    assert await store.due_queues(2000) == []
    assert await store.reconcile() == 1
    assert await store.due_queues(2000) == [TAG]


async def test_set_due_keeps_a_concurrent_enqueue(redis):
    store = QueueStore(redis)
    await _enqueue(redis, ["late"], 1000)
    # A worker that saw an empty queue clears the hint after "late" arrived: not lost.
    await store.set_due(TAG, None)
    assert await store.due_queues(1000) == [TAG]


async def test_redelivered_batch_is_not_sent_or_counted_twice(
    client, sender, mp, engine_config, redis, test_policy
):
    body = {"from": "a@acme.example", "to": ["x@gmail.example", "y@gmail.example"], "text": "t"}
    ids = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()["email_ids"]
    tag = keys.queue_tag(sender.api_user, "gmail.example")
    store = QueueStore(redis)
    pool = SmtpPool(helo_name="t", timeout=5, limiter=Limiter(redis, test_policy, time.time))
    router = Router({"*": Destination("127.0.0.1", mp.port, "mp")})
    deliverer = Deliverer(redis, engine_config, router, pool, time.time)
    now = int(time.time() * 1000)
    claim = await store.claim(tag, now, 60_000, 10)
    assert sorted(claim.email_ids) == sorted(ids)
    report = await deliverer.deliver(tag, claim.email_ids)
    assert report.delivered == 2
    # A worker that died after sending but before acking: its leases come back...
    async with redis.pipeline(transaction=False) as pipe:
        for email_id in ids:
            pipe.zadd(keys.queue_lease(tag), {email_id: now})
        await pipe.execute()
    again = await store.claim(tag, now + 1, 60_000, 10)
    assert sorted(again.email_ids) == sorted(ids)
    # ...and the second worker neither sends nor counts them again.
    report = await deliverer.deliver(tag, again.email_ids)
    assert (report.delivered, report.skipped) == (0, 2)
    assert mp.state.accepted == 2
    assert await redis.zcard(keys.index_status(sender.account, "delivered")) == 2
    assert await redis.zcard(keys.index_status(sender.account, "requesting")) == 0
    assert await store.pending(tag) == 0
    await pool.close()


async def test_same_outcome_applied_twice_changes_nothing(redis):
    from queue_engine.records import TRANSITION_LUA

    transition = redis.register_script(TRANSITION_LUA)
    await redis.hset("em:x", mapping={"status": "requesting", "attempts": "0"})
    args = ["requesting", "0", "status", "delivered", "attempts", "1"]
    assert await transition(keys=["em:x"], args=args) == 1
    assert await transition(keys=["em:x"], args=args) == 0
    assert await redis.hgetall("em:x") == {"status": "delivered", "attempts": "1"}


async def test_retention_trims_old_index_entries(client, sender, redis):
    from queue_engine.retention import trim_indexes

    body = {"from": "a@acme.example", "to": ["x@gmail.example"], "text": "t", "tag": "t1"}
    [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
        "email_ids"
    ]
    now = int(time.time() * 1000)
    assert await trim_indexes(redis, now, retention_days=1) == 0
    removed = await trim_indexes(redis, now + 2 * 86_400_000, retention_days=1)
    assert removed >= 4  # all, api_user, type, status
    assert await redis.zcard(keys.index_all(sender.account)) == 0
    assert await redis.ttl(keys.email(email_id)) > 0
    assert await redis.ttl(keys.index_address(sender.account, "x@gmail.example")) > 0


async def test_emails_not_started_before_the_lease_ends_go_back_untried(
    client, sender, mp, engine_config, redis, test_policy
):
    body = {"from": "a@acme.example", "to": ["x@gmail.example", "y@gmail.example"], "text": "t"}
    ids = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()["email_ids"]
    tag = keys.queue_tag(sender.api_user, "gmail.example")
    store = QueueStore(redis)
    pool = SmtpPool(helo_name="t", timeout=5, limiter=Limiter(redis, test_policy, time.time))
    deliverer = Deliverer(
        redis,
        engine_config,
        Router({"*": Destination("127.0.0.1", mp.port, "mp")}),
        pool,
        time.time,
    )
    now = int(time.time() * 1000)
    claim = await store.claim(tag, now, 60_000, 10)
    report = await deliverer.deliver(tag, claim.email_ids, lease_deadline_ms=now)
    assert (report.delivered, report.retried) == (0, 2)
    assert mp.state.rcpt_attempts == {}
    assert await redis.zcard(keys.queue_lease(tag)) == 0
    assert sorted(await redis.zrange(keys.queue_ready(tag), 0, -1)) == sorted(ids)
    for email_id in ids:
        assert await redis.hget(keys.email(email_id), "attempts") is None  # never attempted
    await pool.close()
