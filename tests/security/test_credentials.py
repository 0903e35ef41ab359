"""Credentials: API keys and passwords are kept only as hashes (every key and value in
Redis is read to prove it), checked in constant time, and guessing them is rate
limited on every route that takes them (429 with Retry-After)."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from security.world import API, BASE_URL, World, build_app, request

from queue_engine import keys
from queue_engine.accounts import (
    EmailType,
    authenticate_console_user,
    create_account,
    create_api_user,
)
from queue_engine.config import EngineConfig
from web.ratelimit import RateLimits

IP = "203.0.113.7"


async def every_stored_string(redis: Redis) -> AsyncIterator[str]:
    """Each key name and every string held in it, whatever the type."""
    async for key in redis.scan_iter(count=1000):
        yield key
        kind = await redis.type(key)
        if kind == "string":
            yield await redis.get(key)
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                yield field
                yield value
        elif kind == "set":
            for member in await redis.smembers(key):
                yield member
        elif kind == "zset":
            for member in await redis.zrange(key, 0, -1):
                yield member
        elif kind == "list":
            for item in await redis.lrange(key, 0, -1):
                yield item
        elif kind == "stream":
            for _, fields in await redis.xrange(key):
                for field, value in fields.items():
                    yield field
                    yield value
        else:
            raise AssertionError(f"{key}: a type this scan does not read: {kind}")


async def test_keys_and_passwords_are_stored_only_as_hashes(
    redis: Redis, open_client: httpx.AsyncClient
) -> None:
    account = await create_account(redis, "acme", "admin@acme.example")
    api_user = await create_api_user(redis, "acme", "acme-tx", EmailType.MARKETING)
    # Use each credential, so that whatever a login or a call stores is in the scan too.
    basic = base64.b64encode(f"acme-tx:{api_user.api_key}".encode()).decode()
    body = {"from": "a@acme.example", "to": ["u@gmail.example"], "text": "t"}
    sent = await open_client.post(
        "/v1/mail/send", json=body, headers={"authorization": f"Basic {basic}"}
    )
    assert sent.status_code == 202
    listed = await open_client.get(
        "/v1/emails", headers={"authorization": f"Bearer {account.account_key}"}
    )
    assert listed.status_code == 200
    assert await authenticate_console_user(redis, account.email, account.password) == "acme"
    await authenticate_console_user(redis, account.email, account.password + "x")

    plaintexts = {
        "password": account.password,
        "account key": account.account_key,
        "API key": api_user.api_key,
        "Basic credentials": basic,
    }
    stored = [s async for s in every_stored_string(redis)]
    assert len(stored) > 20  # the scan reads what is there
    for name, secret in plaintexts.items():
        # Whole, or any long piece of it (a truncated or prefixed copy).
        pieces = {secret[i : i + 12] for i in range(0, len(secret) - 11, 4)}
        leaks = [s for s in stored if any(p in s for p in pieces)]
        assert leaks == [], f"the {name} is stored in the clear: {leaks}"
    # What is kept instead: SHA-256 of each random key, scrypt of the password.
    hashes = {
        hashlib.sha256(k.encode()).hexdigest() for k in (account.account_key, api_user.api_key)
    }
    assert hashes <= set(stored)
    password = await redis.hget(keys.console_user(account.email), "password")
    assert password.startswith("scrypt$16384$8$1$")


def _fill(limit_scope: str, who: str, window_seconds: int) -> list[str]:
    """The counter keys of this window and the next, so a boundary mid-test changes nothing."""
    window = int(time.time() // window_seconds)
    return [keys.rate_counter(limit_scope, who, w) for w in (window, window + 1)]


async def _client(redis_url: str, engine_config: EngineConfig) -> httpx.AsyncClient:
    limits = RateLimits(api_per_minute=100, auth_failures_per_minute=10)
    transport = httpx.ASGITransport(app=build_app(redis_url, engine_config, limits), client=(IP, 1))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


def assert_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "rate_limited"


@pytest.mark.parametrize(("method", "path"), API)
async def test_every_api_route_is_rate_limited_per_caller_and_per_ip(
    redis_url: str, redis: Redis, engine_config: EngineConfig, world: World, method, path
) -> None:
    async with await _client(redis_url, engine_config) as client:
        # A caller over its budget: its API_USER, and the account key on its own.
        for key in _fill("api", world.acme.api_user, 60):
            await redis.set(key, 10**6)
        assert_429(await client.send(request(method, path, world, world.acme.basic)))
        bearer = await client.send(request(method, path, world, world.acme.bearer))
        assert bearer.status_code != 429, bearer.text
        # An address that failed to authenticate too often: good credentials wait too.
        for key in _fill("authfail", IP, 60):
            await redis.set(key, 10**6)
        assert_429(await client.send(request(method, path, world, world.acme.bearer)))
        assert_429(await client.send(request(method, path, world, {})))


async def test_console_logins_are_rate_limited_per_email_and_per_ip(
    redis_url: str, redis: Redis, engine_config: EngineConfig, world: World
) -> None:
    # Limits per email and per IP after failed logins: tests/web/test_rate_limits.py counts
    # them up; here, both limits answer 429 with Retry-After even to the right password.
    async with await _client(redis_url, engine_config) as client:
        page = await client.get("/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        form = {"email": "admin@acme.example", "password": "whatever", "csrf_token": token}
        for key in _fill("loginfail", "admin@acme.example", 900):
            await redis.set(key, 10**6)
        response = await client.post("/login", data=form)
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        assert "Too many failed attempts" in response.text
