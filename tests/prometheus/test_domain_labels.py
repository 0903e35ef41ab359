"""The capped `domain` label: top N domains by volume, the rest `other`, counters monotonic."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from queue_engine import keys
from queue_engine.domain_labels import OTHER, DomainLabels, plan
from queue_engine.stats import count_attempts, count_inbound, count_outcomes


def test_plan_fills_free_room_with_the_busiest_domains():
    volumes = {"a": 5, "b": 50, "c": 20, "d": 0}
    assert plan(set(), volumes, 2) == ([], ["b", "c"])
    assert plan({"b"}, volumes, 3) == ([], ["c", "a"])


def test_plan_swaps_only_for_clearly_more_volume():
    named = {"a", "b"}
    assert plan(named, {"a": 100, "b": 80, "c": 100}, 2) == ([], [])  # not 1.25 x 80
    assert plan(named, {"a": 100, "b": 80, "c": 101}, 2) == (["b"], ["c"])
    assert plan(named, {"a": 100, "b": 80, "c": 101, "d": 500}, 2) == (["b"], ["d"])
    assert plan(named, {"a": 100, "b": 80, "c": 126, "d": 500}, 2) == (["b", "a"], ["d", "c"])
    # A named domain without recent mail is the first to go.
    assert plan({"a", "gone"}, {"a": 3, "new": 1}, 2) == (["gone"], ["new"])


def test_plan_shrinks_the_set_when_the_limit_is_lowered():
    assert plan({"a", "b", "c"}, {"a": 3, "b": 2, "c": 1}, 1) == (["c", "b"], [])


async def test_claims_never_name_more_than_the_limit(redis):
    domains = [f"d{i}.example" for i in range(40)]
    processes = [DomainLabels(redis) for _ in range(4)]
    results = await asyncio.gather(
        *(labels.claim(domains[i::4], 10) for i, labels in enumerate(processes))
    )
    named = await redis.smembers(keys.METRIC_DOMAINS)
    assert len(named) == 10
    for result in results:
        assert {d for d, label in result.items() if label != OTHER} <= named
        assert all(label in (d, OTHER) for d, label in result.items())
    assert await DomainLabels(redis).claim(["late.example"], 10) == {"late.example": OTHER}


async def test_the_cap_holds_with_5000_domains(redis, scrape):
    domains = [f"d{i:04}.example" for i in range(5000)]
    now_ms = int(time.time() * 1000)
    labels = await DomainLabels(redis).claim(domains, 50)
    per_label = Counter(labels.values())
    for api_user in ("acme-tx", "acme-mk"):
        async with redis.pipeline(transaction=False) as pipe:
            queued = {}
            for i, domain in enumerate(domains):
                tag = keys.queue_tag(api_user, domain)
                pipe.zadd(keys.queue_ready(tag), {f"{api_user}-{i}": now_ms})
                pipe.zadd(keys.QUEUES_DUE, {tag: now_ms})
                queued[tag] = 1
            count_inbound(pipe, queued, labels, now_ms)
            for label, n in per_label.items():
                count_attempts(pipe, api_user, label, ["delivered"] * n, [0.2] * n, n)
                count_outcomes(pipe, {("delivered", "", label): n})
            await pipe.execute()
    started = time.perf_counter()
    s = await scrape()
    elapsed = time.perf_counter() - started
    ours = {k: v for k, v in s.samples.items() if k[0].startswith("mailpulse_")}
    domain_values = {dict(labels)["domain"] for _, labels in ours if "domain" in dict(labels)}
    assert len(domain_values) == 51 and OTHER in domain_values
    assert s.value("mailpulse_labelled_domains") == 50
    assert len(ours) < 1000, len(ours)
    # Nothing is lost by capping: the sums are those of every queue.
    assert s.total("mailpulse_queue_pending_emails") == 10_000
    assert s.total("mailpulse_queue_inbound_total") == 10_000
    assert s.total("mailpulse_queue_outbound_total") == 10_000
    assert s.value("mailpulse_busy_queues") == 10_000
    assert s.value("mailpulse_queue_pending_emails", api_user="acme-mk", domain=OTHER) == 4950
    assert elapsed < 5.0, elapsed  # bench.metrics measures it; this catches a blow-up
