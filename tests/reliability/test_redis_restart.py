"""Redis restart (issue 10, point 2): the embedded redis-server (AOF, fsync before every
reply) is SIGKILLed while a sender posts mail and an engine process delivers it, then
started again on the same data dir.

Nothing acknowledged is lost (every email of a 202 exists afterwards and ends
`delivered`), the web app and the engine reconnect by themselves (no restart of
either), and while Redis is down the send API answers 503 `storage_unavailable`
and the console a "Storage unavailable" page: never a 500 or a stack trace.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from crash_harness import Engines, TracingMP, requesting_now, until
from soak_harness import POLICY
from traffic import Traffic

from app.embedded_redis import EmbeddedRedis
from app.runtime import connect
from queue_engine import keys
from queue_engine.accounts import EmailType, create_account, create_api_user
from web.api import ApiConfig
from web.app import create_web_app
from web.session import COOKIE, Session, SessionCodec

DOMAINS = [f"restart{d}.example" for d in range(2)]


@pytest.fixture
def redis_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def servers(redis_dir: Path) -> Iterator[list[EmbeddedRedis]]:
    """The embedded Redis, and the one restarted in its place: stopped at teardown."""
    started = [EmbeddedRedis(redis_dir)]
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def engines(
    servers: list[EmbeddedRedis], tracing_mp: TracingMP, tmp_path: Path
) -> Iterator[Engines]:
    launcher = Engines.to(tracing_mp, servers[0].start(), tmp_path, POLICY)
    yield launcher
    launcher.kill_all()


async def test_redis_killed_and_restarted_loses_nothing_acknowledged(
    redis_dir, servers, engines, tracing_mp, engine_config
):
    server = servers[0]
    url = engines.redis_url
    assert url.startswith("unix://")
    redis = connect(url)
    await create_account(redis, "acme", "admin@acme.example")
    api_user = await create_api_user(redis, "acme", "acme-tx", EmailType.TRANSACTIONAL)
    await redis.aclose()
    basic = base64.b64encode(f"acme-tx:{api_user.api_key}".encode()).decode()
    app = create_web_app(ApiConfig(engine=engine_config), connect(url))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    session = Session("tok", "acme", "admin@acme.example", int(time.time()) + 600)
    cookie = SessionCodec(engine_config.secret).encode(session)
    async with httpx.AsyncClient(transport=transport, base_url="http://mailpulse.test") as c:
        c.cookies.set(COOKIE, cookie)
        traffic = Traffic(c, {"authorization": f"Basic {basic}"}, DOMAINS)
        sending = asyncio.create_task(traffic.run())
        try:
            # Leases long enough that an MP slowed down by this busy test loop does not
            # get its attempts cut at the lease's end (and sent again).
            engines.start("engine-1.restart", lease_seconds=5)
            await until(lambda: len(tracing_mp.seen) >= 500, "500 delivered", engines, 60)
            assert (await c.get("/", headers={"accept": "text/html"})).status_code == 200

            # SIGKILL: no shutdown, no last AOF flush; what Redis acknowledged must be on disk.
            assert server.pid is not None
            os.kill(server.pid, signal.SIGKILL)
            server.stop()  # reaps the dead process; nothing else to stop
            acknowledged_before = len(traffic.acknowledged)
            down_since = traffic.calls
            await until(lambda: traffic.calls >= down_since + 5, "sends while down", engines)
            page = await c.get("/", headers={"accept": "text/html"})
            assert page.status_code == 503, page.text
            assert "Storage unavailable" in page.text and "Traceback" not in page.text
            health = await c.get("/healthz")
            assert health.status_code == 503
            assert health.json()["error"]["code"] == "storage_unavailable"
            assert len(traffic.acknowledged) == acknowledged_before, "a 202 while Redis is down"
            engines.check_alive()

            down_for = time.monotonic()
            copies = len(tracing_mp.copies)
            servers.append(EmbeddedRedis(redis_dir))
            assert servers[-1].start() == url
            up = time.monotonic()
            down_for = up - down_for
            # The same web app and engine carry on: new sends are accepted and delivered.
            await until(
                lambda: len(traffic.acknowledged) > acknowledged_before, "a 202", engines, 30
            )
            web_back = time.monotonic() - up
            await until(lambda: len(tracing_mp.copies) > copies, "a delivery", engines, 30)
            engine_back = time.monotonic() - up
            await until(
                lambda: len(traffic.acknowledged) >= acknowledged_before + 200,
                "202s again after the restart",
                engines,
                30,
            )
            assert (await c.get("/", headers={"accept": "text/html"})).status_code == 200
        finally:
            traffic.stopped = True
            await asyncio.wait_for(sending, 30)

        ids = traffic.acknowledged
        assert len(set(ids)) == len(ids)
        redis = connect(url)

        async def all_final() -> bool:
            return await redis.zcard(keys.index_status("acme", "requesting")) == 0

        await until(all_final, "every acknowledged email final", engines, 60)
        async with redis.pipeline(transaction=False) as pipe:
            for email_id in ids:
                pipe.hget(keys.email(email_id), "status")
            statuses = Counter(await pipe.execute())
        assert statuses == Counter(delivered=len(ids)), statuses
        assert set(ids) <= set(tracing_mp.seen), "an acknowledged email never reached the MP"
        # Sends were refused as storage_unavailable only, never with a 500.
        assert set(traffic.answers) <= {202, 503}, traffic.answers
        assert set(traffic.errors) == {"storage_unavailable"}, traffic.errors
        twice = sum(1 for n in tracing_mp.seen.values() if n > 1)
        # A call cut off by the kill stored all of its emails or none (one MULTI): no
        # record is left `requesting` outside every queue.
        stranded = await requesting_now(redis, sorted(await _all_records(redis)))
        assert not stranded, f"{len(stranded)} records of refused calls stranded"
        print(
            f"\nredis restart: {len(ids)} acknowledged, all delivered; answers"
            f" {dict(traffic.answers)}; sent twice {twice}; after the restart: first 202"
            f" {web_back:.2f}s, first delivery {engine_back:.2f}s (down for {down_for:.2f}s)"
        )
        await redis.aclose()


async def _all_records(redis) -> set[str]:
    prefix = keys.email("")
    return {key[len(prefix) :] async for key in redis.scan_iter(match=f"{prefix}*", count=1000)}
