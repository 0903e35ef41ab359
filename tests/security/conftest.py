"""Fixtures of the security tests (their helpers are in world.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import Sender
from redis.asyncio import Redis
from security.world import (
    BASE_URL,
    ENTRIES,
    SECRET_RECIPIENT,
    SECRET_TAG,
    World,
    build_app,
    session_cookie,
)

from queue_engine import keys
from queue_engine.config import EngineConfig
from queue_engine.queues import QueueStore
from queue_engine.statuses import PauseReason
from queue_engine.suppression import Origin, Suppressions


@pytest.fixture
def engine_config(engine_config: EngineConfig, tmp_path: Path) -> EngineConfig:
    return replace(engine_config, exports_dir=tmp_path / "exports")


@pytest.fixture
async def open_client(
    redis_url: str, redis: Redis, engine_config: EngineConfig
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=build_app(redis_url, engine_config), client=("203.0.113.7", 40000)
    )
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        yield c


@pytest.fixture
async def world(
    open_client: httpx.AsyncClient,
    redis: Redis,
    make_sender: Callable[..., Awaitable[Sender]],
    engine_config: EngineConfig,
) -> World:
    acme = await make_sender("acme", "acme-tx")
    other = await make_sender("other", "other-tx")
    await make_sender("other", "other-mk", "marketing")
    sent = await open_client.post(
        "/v1/mail/send",
        json={"from": "a@acme.example", "to": [SECRET_RECIPIENT], "text": "t", "tag": SECRET_TAG},
        headers=acme.basic,
    )
    [email_id] = sent.json()["email_ids"]
    now = int(time.time() * 1000)
    tag = keys.queue_tag(acme.api_user, "gmail.example")
    await QueueStore(redis).pause(tag, PauseReason.MANUAL, now, now + 3_600_000, "by acme")
    task = await open_client.post("/v1/exports", json={}, headers=acme.bearer)
    store = Suppressions(redis)
    for kind, address in ENTRIES.items():
        await store.add(acme.account, kind, [(address, None, None, "acme's")], Origin.API, now)
    return World(
        acme,
        other,
        email_id,
        task.json()["id"],
        tag,
        session_cookie(engine_config.secret, acme.account),
        session_cookie(engine_config.secret, other.account),
    )
