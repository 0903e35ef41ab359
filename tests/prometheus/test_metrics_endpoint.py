"""GET /metrics on a live system: what each metric says, access control, Redis down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re

import httpx
import pytest
from scrapes import get_metrics, parse, run_tool, send

from app.runtime import connect
from prometheus import metrics
from queue_engine.stats import report_clients
from web.api import ApiConfig
from web.app import create_web_app
from web.metrics import report_websocket_clients
from web.requests import Networks

Q = {"api_user": "acme-tx"}


async def test_a_live_system_shows_in_every_metric(live_system, scrape, promtool):
    s = await scrape()
    # Queues: counters per API_USER x domain label, and the paused queue's backlog.
    assert s.value("mailpulse_queue_inbound_total", **Q, domain="gmail.example") == 2
    assert s.value("mailpulse_queue_attempted_total", **Q, domain="gmail.example") == 2
    assert s.value("mailpulse_queue_outbound_total", **Q, domain="gmail.example") == 2
    assert s.value("mailpulse_queue_inbound_total", **Q, domain="outlook.example") == 1
    assert s.value("mailpulse_queue_outbound_total", **Q, domain="outlook.example") is None
    assert s.value("mailpulse_queue_pending_emails", **Q, domain="gmail.example") == 0
    assert s.value("mailpulse_queue_pending_emails", **Q, domain="qq.example") == 2
    assert s.value("mailpulse_queue_paused", **Q, domain="qq.example", reason="ip_quota") == 1
    age = s.value("mailpulse_queue_pause_age_seconds", **Q, domain="qq.example", reason="ip_quota")
    assert age is not None and 0 <= age < 60
    assert s.value("mailpulse_busy_queues") == 1
    # Outcomes, including a soft bounce after delivery and a refusal before any attempt.
    outcomes = {
        (x["status"], x["reason"], x["domain"]): s.value("mailpulse_delivery_outcomes_total", **x)
        for x in s.series("mailpulse_delivery_outcomes_total")
    }
    assert outcomes == {
        ("delivered", "", "gmail.example"): 2,
        ("soft_bounce", "address_not_exist", "gmail.example"): 1,
        ("invalid", "address_not_exist", "outlook.example"): 1,
        ("invalid", "address_format_error", "other"): 1,
    }
    assert s.value("mailpulse_spam_reports_total", domain="gmail.example") == 1
    # SMTP latency: one observation per attempt, by outcome.
    name = "mailpulse_smtp_delivery_duration_seconds"
    assert s.value(f"{name}_count", outcome="delivered") == 2
    assert s.value(f"{name}_count", outcome="permanent") == 1
    assert s.value(f"{name}_bucket", outcome="delivered", le="+Inf") == 2
    assert 0 < (s.value(f"{name}_sum", outcome="delivered") or 0) < 10
    # Suppression lists: the bounce and the spam report added entries.
    assert s.value("mailpulse_suppression_entries", list="bounces") == 2
    assert s.value("mailpulse_suppression_entries", list="complaints") == 1
    assert {x["status"] for x in s.series("mailpulse_export_tasks")} == {
        "pending",
        "running",
        "success",
        "failed",
    }
    assert s.value("mailpulse_websocket_clients") == 3
    assert s.value("mailpulse_redis_up") == 1
    assert 0 < (s.value("mailpulse_redis_roundtrip_seconds") or 0) < 1
    assert s.value("process_resident_memory_bytes")
    # Every declared metric is there, and promtool finds nothing wrong with any of it.
    for spec in metrics.ALL:
        assert any(n.startswith(spec.name) for n in s.names), spec.name
    status, output = await run_tool(promtool, "check", "metrics", stdin=s.text)
    assert status == 0, output


async def test_names_follow_the_conventions_and_no_label_names_an_address(live_system, scrape):
    s = await scrape()
    assert not [n for n in s.names if n.endswith("_created")]
    ours = {n for n in s.names if not n.startswith(("process_", "python_"))}
    assert all(n.startswith("mailpulse_") for n in ours), ours
    for line in s.text.splitlines():
        if line.startswith("# TYPE mailpulse_") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line
    values = {v for _, labels in s.samples for _, v in labels}
    assert not [v for v in values if "@" in v or re.fullmatch(r"[0-9a-f]{28}", v)]
    assert "c@qq.example" not in s.text and live_system["waiting"][0] not in s.text


async def test_every_web_process_reports_the_same(live_system, redis_url, engine_config, scrape):
    other = create_web_app(ApiConfig(engine=engine_config), connect(redis_url))
    transport = httpx.ASGITransport(app=other)
    async with httpx.AsyncClient(transport=transport, base_url="http://web2.test") as client2:
        first, second = await scrape(), await get_metrics(client2)

    def ours(samples):
        return {
            k: v
            for k, v in samples.items()
            if k[0].startswith("mailpulse_") and "seconds" not in k[0]
        }

    assert ours(first.samples) == ours(second.samples)
    assert len(ours(first.samples)) > 20


async def test_websocket_clients_add_up_over_live_processes(redis, scrape):
    import time

    now_ms = int(time.time() * 1000)
    await report_clients(redis, "web-a", 2, now_ms)
    await report_clients(redis, "web-b", 5, now_ms - 1000)
    await report_clients(redis, "web-dead", 40, now_ms - 120_000)
    assert (await scrape()).value("mailpulse_websocket_clients") == 7
    assert await redis.hkeys("metrics:ws_clients") == ["web-a", "web-b"]


async def test_each_web_process_reports_its_hub_clients(redis, scrape, wait_for):
    """web/app.py runs this in every web process with the console hub's count."""
    connected = [4]
    task = asyncio.create_task(report_websocket_clients(redis, lambda: connected[0]))
    try:

        async def reported() -> bool:
            return (await scrape()).value("mailpulse_websocket_clients") == connected[0]

        await wait_for(reported)
        [process] = await redis.hkeys("metrics:ws_clients")
        assert process.split(":")[1] == str(os.getpid())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_queue_shows_its_pause_until_resumed(client, sender, redis, scrape):
    await send(client, sender.basic, ["x@yahoo.example"])
    paused = await client.post("/v1/queues/acme-tx/yahoo.example/pause", headers=sender.basic)
    assert paused.status_code == 200
    s = await scrape()
    assert s.value("mailpulse_queue_paused", **Q, domain="yahoo.example", reason="manual") == 1
    assert s.value("mailpulse_queue_pending_emails", **Q, domain="yahoo.example") == 1
    await client.post("/v1/queues/acme-tx/yahoo.example/resume", headers=sender.basic)
    s = await scrape()
    assert s.series("mailpulse_queue_paused") == []
    assert s.series("mailpulse_queue_pause_age_seconds") == []


async def app_client(
    redis_url: str, engine_config, **config: str | Networks | None
) -> httpx.AsyncClient:
    app = create_web_app(ApiConfig(engine=engine_config, **config), connect(redis_url))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://mailpulse.test")


async def test_a_metrics_token_is_required_once_set(redis, redis_url, engine_config):
    async with await app_client(redis_url, engine_config, metrics_token="s3cret") as c:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret"}):
            response = await c.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
        ok = await c.get("/metrics", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "mailpulse_redis_up 1.0" in ok.text


@pytest.mark.parametrize(
    ("allow", "status"),
    [("10.0.0.0/8", 403), ("10.0.0.0/8,203.0.113.0/24", 200), ("203.0.113.7/32", 200)],
)
async def test_the_allow_list_decides_who_reads_metrics(
    redis, redis_url, engine_config, allow, status
):
    import ipaddress

    networks = tuple(ipaddress.ip_network(n) for n in allow.split(","))
    async with await app_client(redis_url, engine_config, metrics_allow=networks) as c:
        response = await c.get("/metrics")
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"] == {
            "code": "forbidden",
            "message": "this address may not read metrics",
            "field": None,
        }


async def test_redis_down_still_answers_with_redis_up_zero(engine_config):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_web_app(ApiConfig(engine=engine_config), connect(f"redis://127.0.0.1:{port}"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mailpulse.test") as c:
        s = await get_metrics(c)
    assert s.value("mailpulse_redis_up") == 0
    assert s.value("process_resident_memory_bytes")
    assert [n for n in s.names if n.startswith("mailpulse_")] == ["mailpulse_redis_up"]


def test_parse_reads_labels_and_values():
    s = parse('# TYPE x gauge\nx{a="1"} 2.0\n')
    assert s.value("x", a="1") == 2.0 and s.value("x") is None
