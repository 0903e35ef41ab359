"""Real parts for every test: one embedded Redis per session (flushed per test),
aiosmtpd MPs on 127.0.0.1, the ASGI app, and an engine delivering to the MPs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakedns import FakeDNS
from redis.asyncio import Redis

from app.embedded_redis import EmbeddedRedis
from app.runtime import connect
from app.simulator import MPServer
from queue_engine.accounts import EmailType, create_account, create_api_user
from queue_engine.config import EngineConfig
from queue_engine.engine import Engine
from queue_engine.policy import DomainPolicy, Policy
from queue_engine.routing import Destination, Router
from web.api import ApiConfig
from web.app import create_web_app

TEST_POLICY = Policy(
    default=DomainPolicy(
        max_connections=4, new_connections_per_minute=100_000, messages_per_connection=50
    )
)
"""Limits that never get in a test's way unless the test asks for them."""

TEST_CONFIG = EngineConfig(
    retry_base_seconds=0.2,
    retry_max_seconds=1.0,
    max_age_seconds=60.0,
    smtp_timeout_seconds=5.0,
    lease_seconds=30.0,
    batch_size=100,
    helo_name="mailpulse.test",
    max_body_bytes=1024 * 1024,
)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Never killed, so an fsync before every reply (the product's default) would
    # only make every test wait on the disk.
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendfsync="everysec")
    yield server.start()
    server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def mp() -> AsyncIterator[MPServer]:
    server = await MPServer(name="mp").start()
    yield server
    await server.stop()


@dataclass(frozen=True)
class Sender:
    """An account with one API_USER, and HTTP auth for both."""

    account: str
    account_key: str
    api_user: str
    api_key: str

    @property
    def basic(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.api_user}:{self.api_key}".encode()).decode()
        return {"authorization": f"Basic {token}"}

    @property
    def bearer(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.account_key}"}


@pytest.fixture
def make_sender(redis: Redis) -> Callable[..., Awaitable[Sender]]:
    async def make(
        account: str = "acme", api_user: str = "acme-tx", email_type: str = "transactional"
    ) -> Sender:
        if not await redis.exists(f"acct:{account}"):
            new = await create_account(redis, account, f"admin@{account}.example")
            make.keys[account] = new.account_key  # type: ignore[attr-defined]
        au = await create_api_user(redis, account, api_user, EmailType(email_type))
        return Sender(account, make.keys[account], api_user, au.api_key)  # type: ignore[attr-defined]

    make.keys = {}  # type: ignore[attr-defined]
    return make


@pytest.fixture
async def sender(make_sender: Callable[..., Awaitable[Sender]]) -> Sender:
    return await make_sender()


@pytest.fixture
def engine_config() -> EngineConfig:
    return TEST_CONFIG


@pytest.fixture
def test_policy() -> Policy:
    return TEST_POLICY


@pytest.fixture
async def client(
    redis_url: str, redis: Redis, engine_config: EngineConfig
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_web_app(ApiConfig(engine=engine_config), connect(redis_url))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://mailpulse.test") as c:
        yield c


@pytest.fixture
async def start_engine(
    redis_url: str, redis: Redis, engine_config: EngineConfig
) -> AsyncIterator[Callable[..., Awaitable[Engine]]]:
    """Start engines routing every domain to the given MP (or routes); stopped at teardown."""
    running: list[tuple[asyncio.Task[None], Redis]] = []

    async def start(
        mp: MPServer | None = None,
        routes: dict[str, Destination] | None = None,
        router: Router | None = None,
        policy: Policy = TEST_POLICY,
        **overrides: Any,
    ) -> Engine:
        if router is None:
            if routes is None:
                assert mp is not None
                routes = {"*": Destination("127.0.0.1", mp.port, "mp.test")}
            router = Router(routes)
        client = connect(redis_url)
        engine = Engine(client, replace(engine_config, **overrides), router, policy=policy)
        running.append((asyncio.create_task(engine.run()), client))
        return engine

    yield start
    for task, client in running:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


@pytest.fixture
async def dns_server() -> AsyncIterator[FakeDNS]:
    server = FakeDNS()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", 0)
    )
    server.port = transport.get_extra_info("sockname")[1]
    yield server
    transport.close()


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll until check() returns something truthy; fail with its last value at the deadline."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(interval)


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[Any]]:
    return eventually


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
