"""Every route that takes a body refuses an oversized, endless, slow or too deeply
nested one with a 4xx, and never reads far past its limit (web/body_limit.py).

The routes come from the app itself, so a new one is covered the day it lands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest import Sender
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from app.runtime import connect
from queue_engine.config import EngineConfig
from queue_engine.tracking import unsubscribe_token
from web.api import ApiConfig
from web.app import UPLOAD_BODY_BYTES, create_web_app
from web.session import COOKIE, Session, SessionCodec

CSRF = "body-test-csrf"
CHUNK = 64 * 1024
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def body_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, Route):
            for method in sorted(set(route.methods or ()) & BODY_METHODS):
                yield method, prefix + route.path
        elif isinstance(route, Mount):
            yield from body_routes(route.routes, prefix + route.path)


def app_for(redis_url: str, engine_config: EngineConfig, timeout: float = 60.0) -> Starlette:
    return create_web_app(
        ApiConfig(engine=engine_config, body_timeout_seconds=timeout), connect(redis_url)
    )


ROUTES = list(body_routes(app_for("redis://127.0.0.1:1/0", EngineConfig()).routes))


@dataclass
class Caller:
    """Whatever gets a request to each route past its authentication, to its body."""

    sender: Sender
    cookie: str
    token: str

    def url(self, path: str) -> str:
        return (
            path.replace("{api_user}", self.sender.api_user)
            .replace("{domain}", "gmail.example")
            .replace("{kind}", "blocks")
            .replace("{task_id}", "0" * 28)
            .replace("{token}", self.token)
        )

    def headers(self, path: str, content_type: str) -> dict[str, str]:
        return {
            **self.sender.basic,
            "cookie": self.cookie,
            "x-csrf-token": CSRF,
            "content-type": content_type,
        }


@pytest.fixture
def caller(sender: Sender, engine_config: EngineConfig) -> Caller:
    secret = engine_config.secret
    session = Session(CSRF, sender.account, "admin@acme.example", int(time.time()) + 600)
    return Caller(
        sender,
        f"{COOKIE}={SessionCodec(secret).encode(session)}",
        unsubscribe_token(secret, "0" * 28, sender.account, sender.api_user, "u@gmail.example"),
    )


def limit_of(path: str, engine_config: EngineConfig) -> int:
    return UPLOAD_BODY_BYTES if path.endswith("/blocks/upload") else engine_config.max_body_bytes


def content_type_of(path: str) -> str:
    if path == "/v1/suppressions/blocks/upload":
        return "text/csv"
    if path.startswith("/v1/"):
        return "application/json"
    return "application/x-www-form-urlencoded"


async def send(
    app: Starlette, method: str, url: str, headers: dict[str, str], content: object
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://mailpulse.test") as c:
        return await c.request(method, url, headers=headers, content=content)  # type: ignore[arg-type]


def test_the_routes_with_bodies_are_found() -> None:
    assert ("POST", "/v1/mail/send") in ROUTES and ("POST", "/login") in ROUTES
    assert ("DELETE", "/v1/suppressions/blocks") in ROUTES
    assert ("POST", "/suppressions/blocks/upload") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_declared_oversized_body_is_413_before_anything_is_read(
    redis_url: str, redis: Redis, engine_config: EngineConfig, caller: Caller, method, path
) -> None:
    app = app_for(redis_url, engine_config)
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read += 1
        yield b"x"

    headers = caller.headers(path, content_type_of(path))
    headers["content-length"] = str(limit_of(path, engine_config) + 1)
    response = await send(app, method, caller.url(path), headers, body())
    assert response.status_code == 413, response.text
    assert response.json()["error"] | {"message": ""} == {
        "code": "too_large",
        "message": "",
        "field": "body",
    }
    assert read == 0


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_an_endless_chunked_body_is_cut_off_at_the_limit(
    redis_url: str, redis: Redis, engine_config: EngineConfig, caller: Caller, method, path
) -> None:
    app = app_for(redis_url, engine_config)
    limit = limit_of(path, engine_config)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 2 * limit:  # a bound, so a failing server still ends the test
            sent += CHUNK
            yield b" " * CHUNK

    headers = caller.headers(path, content_type_of(path))
    response = await send(app, method, caller.url(path), headers, endless())
    assert response.status_code < 500, response.text
    # Either the route never wanted the body (a resume, a page that is not there), or it
    # stopped at the limit instead of buffering everything.
    assert sent <= limit + CHUNK, (sent, limit)
    # ... or it stopped reading by itself, well before (the one-click unsubscribe's form).
    assert response.status_code in (404, 413) or sent < limit, response.text


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_body_that_stalls_is_408_at_the_deadline(
    redis_url: str, redis: Redis, engine_config: EngineConfig, caller: Caller, method, path
) -> None:
    app = app_for(redis_url, engine_config, timeout=0.3)
    never = asyncio.Event()  # the slow client's next byte

    async def stalled() -> AsyncIterator[bytes]:
        yield b" "
        await never.wait()
        yield b" "

    headers = caller.headers(path, content_type_of(path))
    started = time.monotonic()
    response = await asyncio.wait_for(
        send(app, method, caller.url(path), headers, stalled()), timeout=10
    )
    assert response.status_code < 500, response.text
    # 404: the route looked its target up first and never waited for the body.
    assert response.status_code in (404, 408), response.text
    if response.status_code == 408:
        assert response.json()["error"]["code"] == "request_timeout"
        assert time.monotonic() - started < 5


DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
JSON_ROUTES = [(m, p) for m, p in ROUTES if content_type_of(p) == "application/json"]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_deeply_nested_json_is_400_on_every_json_route(
    redis_url: str, redis: Redis, engine_config: EngineConfig, caller: Caller, method, path
) -> None:
    app = app_for(redis_url, engine_config)
    headers = caller.headers(path, "application/json")
    response = await send(app, method, caller.url(path), headers, DEEP)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()["error"]) == {"code", "message", "field"}
