"""Scraping /metrics, a system with something in every metric, and the Prometheus tools.

`promtool` and `prometheus` come from Debian's `prometheus` package, which
`make test` installs when run as root; elsewhere the tests needing them skip.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from scrapes import RETURN_DOMAIN, Scrape, apply_report, get_metrics, send, wait_final

from app.simulator import MPServer
from queue_engine import keys
from queue_engine.config import EngineConfig
from queue_engine.queues import QueueStore
from queue_engine.stats import report_clients
from queue_engine.statuses import PauseReason


@pytest.fixture
def scrape(client: httpx.AsyncClient) -> Callable[[], Awaitable[Scrape]]:
    async def get() -> Scrape:
        return await get_metrics(client)

    return get


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed: Debian's `prometheus` package has it"
            " (`make test` installs it when run as root)"
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return _tool("prometheus")


@pytest.fixture
async def live_system(
    client: httpx.AsyncClient,
    sender: Any,
    redis: Redis,
    mp: MPServer,
    start_engine: Any,
    wait_for: Any,
    engine_config: EngineConfig,
) -> dict[str, list[str]]:
    """Something in every metric: deliveries, a bounce, a soft bounce, a spam report,
    a malformed address, a paused queue with mail, a websocket client."""
    await start_engine(mp, return_path_domain=RETURN_DOMAIN)
    delivered = await send(client, sender.basic, ["a@gmail.example", "b@gmail.example"])
    bounced = await send(client, sender.basic, ["unknown1@outlook.example", "not-an-address"])
    await wait_final(redis, delivered + bounced, wait_for)
    await apply_report(redis, engine_config.secret, delivered[0], "dsn")
    await apply_report(redis, engine_config.secret, delivered[1], "arf")
    paused_tag = keys.queue_tag(sender.api_user, "qq.example")
    now_ms = int(time.time() * 1000)
    await QueueStore(redis).pause(paused_tag, PauseReason.IP_QUOTA, now_ms, now_ms + 3_600_000)
    waiting = await send(client, sender.basic, ["c@qq.example", "d@qq.example"])
    await report_clients(redis, "web-1", 3, now_ms)
    return {"delivered": delivered, "bounced": bounced, "waiting": waiting}
