"""Rate limits over the real app and Redis: per API caller, failed sign-ins per IP and per
console user, each answered 429 with Retry-After, shared through Redis."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from redis.asyncio import Redis

from app.runtime import connect
from queue_engine.accounts import create_account
from queue_engine.config import EngineConfig
from web.api import ApiConfig
from web.app import create_web_app
from web.ratelimit import RateLimits

LIMITS = RateLimits(api_per_minute=5, auth_failures_per_minute=4, login_failures_per_15_minutes=3)


@pytest.fixture
async def make_client(
    redis_url: str, redis: Redis, engine_config: EngineConfig
) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    app = create_web_app(ApiConfig(engine=engine_config, rate_limits=LIMITS), connect(redis_url))
    clients: list[httpx.AsyncClient] = []

    def make(ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://mailpulse.test")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_each_api_caller_has_its_own_budget(make_client, make_sender) -> None:
    one = await make_sender("acme", "acme-a")
    two = await make_sender("acme", "acme-b")
    client = make_client("203.0.113.7")
    codes = [(await client.get("/v1/emails", headers=one.basic)).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    refused = await client.get("/v1/emails", headers=one.basic)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another API_USER, and the account key, count on their own.
    assert (await client.get("/v1/emails", headers=two.basic)).status_code == 200
    assert (await client.get("/v1/emails", headers=one.bearer)).status_code == 200


async def test_failed_authentications_block_the_ip_even_with_good_credentials(
    make_client, sender
) -> None:
    attacker = make_client("198.51.100.9")
    wrong = {"authorization": "Basic " + "YWNtZS10eDp3cm9uZw=="}  # acme-tx:wrong
    codes = [(await attacker.get("/v1/emails", headers=wrong)).status_code for _ in range(5)]
    assert codes == [401] * 4 + [429]
    response = await attacker.get("/v1/emails", headers=sender.basic)
    assert response.status_code == 429 and "retry-after" in response.headers
    # Everyone else is untouched.
    assert (
        await make_client("203.0.113.7").get("/v1/emails", headers=sender.basic)
    ).status_code == 200


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )


async def test_console_logins_are_limited_per_user_and_per_ip(make_client, redis: Redis) -> None:
    new = await create_account(redis, "acme", "admin@acme.example")
    # Guessing one user's password from several addresses: the per-user limit stops it.
    for i in range(3):
        response = await _login(make_client(f"198.51.100.{i}"), new.email, "guess")
        assert response.status_code == 200 and "Wrong email or password" in response.text
    blocked = await _login(make_client("198.51.100.50"), new.email, new.password)
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.text and "retry-after" in blocked.headers
    # Trying many users from one address: the per-IP limit stops it.
    spray = make_client("198.51.100.77")
    codes = [(await _login(spray, f"u{i}@x.example", "guess")).status_code for i in range(5)]
    assert codes == [200] * 4 + [429]
    other = await create_account(redis, "globex", "admin@globex.example")
    assert (await _login(spray, other.email, other.password)).status_code == 429
    ok = await _login(make_client("203.0.113.7"), other.email, other.password)
    assert ok.status_code == 303
