"""The totals behind the counters: counted once, kept in Redis, added up over processes."""

from __future__ import annotations

import asyncio
import contextlib

from conftest import TEST_POLICY
from scrapes import RETURN_DOMAIN, apply_report, send, wait_final

from app.runtime import connect
from queue_engine import keys
from queue_engine.engine import Engine
from queue_engine.routing import Destination, Router
from queue_engine.stats import DURATION_BUCKETS, read_totals

Q = {"api_user": "acme-tx"}
COUNTERS = (
    "mailpulse_queue_attempted_total",
    "mailpulse_queue_outbound_total",
    "mailpulse_delivery_outcomes_total",
)


async def test_an_outcome_applied_twice_counts_once(
    client, sender, redis, redis_url, mp, engine_config, scrape
):
    """Two engines deliver the same email at once (a lease that expired under a slow
    worker): both attempts are real and count, but only one transition applies."""
    ids = await send(client, sender.basic, ["twice@gmail.example"])
    router = Router({"*": Destination("127.0.0.1", mp.port, "mp.test")})
    clients = [connect(redis_url) for _ in range(2)]
    try:
        engines = [Engine(c, engine_config, router, policy=TEST_POLICY) for c in clients]
        tag = keys.queue_tag(sender.api_user, "gmail.example")
        reports = await asyncio.gather(*(e.deliverer.deliver(tag, ids) for e in engines))
        for engine in engines:
            await engine.pool.close()
    finally:
        for c in clients:
            await c.aclose()
    assert sorted((r.delivered, r.skipped) for r in reports) == [(0, 1), (1, 0)]
    assert len(mp.state.received) == 2
    s = await scrape()
    assert s.value("mailpulse_queue_attempted_total", **Q, domain="gmail.example") == 2
    assert s.value("mailpulse_queue_outbound_total", **Q, domain="gmail.example") == 1
    assert s.total("mailpulse_delivery_outcomes_total") == 1
    # A later redelivery of the settled email (its lease came back) counts nothing.
    again = Engine(redis, engine_config, router, policy=TEST_POLICY)
    report = await again.deliverer.deliver(tag, ids)
    await again.pool.close()
    assert (report.skipped, len(mp.state.received)) == (1, 2)
    after = await scrape()
    for name in COUNTERS:
        assert after.total(name) == s.total(name), name


async def test_totals_add_up_over_engines_and_survive_restarts(
    client, sender, redis, redis_url, mp, engine_config, wait_for, scrape
):
    router = Router({"*": Destination("127.0.0.1", mp.port, "mp.test")})

    async def run_engines(n: int, to: list[str]) -> None:
        clients = [connect(redis_url) for _ in range(n)]
        engines = [Engine(c, engine_config, router, policy=TEST_POLICY) for c in clients]
        tasks = [asyncio.create_task(e.run()) for e in engines]
        try:
            await wait_final(redis, await send(client, sender.basic, to), wait_for)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for c in clients:
                await c.aclose()

    first = [f"r{i}@d{i % 4}.example" for i in range(120)]
    await run_engines(2, first)
    s1 = await scrape()
    assert s1.total("mailpulse_queue_outbound_total") == 120
    assert s1.value("mailpulse_queue_outbound_total", **Q, domain="d0.example") == 30
    # A new engine process (the old ones are gone) adds to the same totals.
    await run_engines(1, [f"s{i}@d{i % 4}.example" for i in range(40)])
    s2 = await scrape()
    assert s2.total("mailpulse_queue_inbound_total") == 160
    assert s2.total("mailpulse_queue_outbound_total") == 160
    assert s2.total("mailpulse_delivery_outcomes_total", status="delivered") == 160
    assert s2.total("mailpulse_smtp_delivery_duration_seconds_count") == 160
    for key, value in s1.samples.items():
        if key[0].endswith(("_total", "_count", "_bucket")):
            assert s2.samples[key] >= value, key


async def test_reports_count_once_however_often_they_arrive(
    client, sender, redis, mp, start_engine, wait_for, engine_config, scrape
):
    await start_engine(mp, return_path_domain=RETURN_DOMAIN)
    bounced, reported = await send(client, sender.basic, ["x@qq.example", "y@qq.example"])
    await wait_final(redis, [bounced, reported], wait_for)
    for _ in range(3):  # an MP that sends its DSN and ARF again
        await apply_report(redis, engine_config.secret, bounced, "dsn")
        await apply_report(redis, engine_config.secret, reported, "arf")
    s = await scrape()
    assert s.value("mailpulse_spam_reports_total", domain="qq.example") == 1
    assert (
        s.value(
            "mailpulse_delivery_outcomes_total",
            status="soft_bounce",
            reason="address_not_exist",
            domain="qq.example",
        )
        == 1
    )


async def test_attempt_durations_land_in_their_buckets(
    client, sender, redis, mp, start_engine, wait_for
):
    await start_engine(mp)
    await wait_final(redis, await send(client, sender.basic, ["t@gmail.example"]), wait_for)
    histogram = (await read_totals(redis)).smtp_seconds["delivered"]
    assert len(histogram.counts) == len(DURATION_BUCKETS) + 1 and sum(histogram.counts) == 1
    [bucket] = [i for i, n in enumerate(histogram.counts) if n]
    upper = DURATION_BUCKETS[bucket] if bucket < len(DURATION_BUCKETS) else float("inf")
    lower = DURATION_BUCKETS[bucket - 1] if bucket else 0.0
    assert lower < histogram.sum <= upper
