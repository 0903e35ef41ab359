"""Counters stay monotonic when the ranking gives a domain its own label or takes it away."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from conftest import TEST_CONFIG
from scrapes import Scrape, send

from queue_engine import domain_labels, keys


@pytest.fixture
def engine_config():
    return replace(TEST_CONFIG, metrics_top_domains=2)


async def test_counters_never_go_down_when_the_labelled_domains_change(
    client, sender, redis, scrape, monkeypatch
):
    # Processes see a new ranking within REFRESH_SECONDS; here at once.
    monkeypatch.setattr(domain_labels, "REFRESH_SECONDS", 0.0)
    history: list[Scrape] = []

    async def step(to: list[str]) -> Scrape:
        await send(client, sender.basic, to)
        history.append(await scrape())
        return history[-1]

    first = await step(["x@a.example", "x@b.example"] + [f"{i}@c.example" for i in range(5)])
    # c.example came third (no room: other); this scrape's ranking named it over a.example.
    assert await redis.smembers(keys.METRIC_DOMAINS) == {"b.example", "c.example"}
    assert await redis.ttl(keys.METRIC_REBALANCE) > 0
    assert first.value("mailpulse_queue_inbound_total", api_user="acme-tx", domain="other") == 5
    assert {s["domain"] for s in first.series("mailpulse_queue_inbound_total")} == {
        "b.example",
        "other",
    }
    second = await step([f"{i}@c.example" for i in range(3)] + ["y@a.example", "z@a.example"])
    assert second.value("mailpulse_queue_inbound_total", api_user="acme-tx", domain="other") == 7
    assert (
        second.value("mailpulse_queue_inbound_total", api_user="acme-tx", domain="c.example") == 3
    )
    assert second.value("mailpulse_labelled_domains") == 2
    for before, after in itertools.pairwise(history):
        for key, value in before.samples.items():
            if key[0].endswith("_total") and key in after.samples:
                assert after.samples[key] >= value, key
