"""Schemathesis against the app's own OpenAPI document: no generated request is a 5xx.

Every operation of `/openapi.json` gets bounded examples, sent in-process over
the ASGI app with a real account's credentials (and, for the console, its
session cookie and CSRF token), so the authenticated handlers run, not only
the 401 in front of them. Path parameters are either generated or the ids of
real things of that account (an email, a queue, an export, tracking tokens).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
import requests
import schemathesis
from conftest import Sender
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from schemathesis.generation.case import Case

from app.runtime import connect
from queue_engine.config import EngineConfig
from queue_engine.tracking import click_token, open_token, unsubscribe_token
from web.api import ApiConfig
from web.app import create_web_app
from web.openapi import SPEC
from web.session import COOKIE, Session, SessionCodec

SCHEMA = schemathesis.openapi.from_dict(SPEC)
OPERATIONS = {
    f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())
}
EXAMPLES = 20
"""Per operation: about 900 requests in all, a few seconds of generation and sending."""
CSRF = "schemathesis-csrf"
BASE_URL = "http://mailpulse.test"
API_ERROR_KEYS = {"code", "message", "field"}


@pytest.fixture
async def client(
    redis_url: str, redis: Redis, engine_config: EngineConfig
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_web_app(ApiConfig(engine=engine_config), connect(redis_url))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        yield c


async def real_ids(client: httpx.AsyncClient, sender: Sender, secret: bytes) -> dict[str, str]:
    """Path parameters that name things the account owns."""
    body = {
        "from": "a@acme.example",
        "to": ["u@gmail.example"],
        "html": "<a href='https://x.example/'>x</a>",
    }
    sent = await client.post("/v1/mail/send", json=body, headers=sender.basic)
    [email_id] = sent.json()["email_ids"]
    task = await client.post("/v1/exports", json={}, headers=sender.bearer)
    return {
        "email_id": email_id,
        "task_id": task.json()["id"],
        "api_user": sender.api_user,
        "domain": "gmail.example",
        "kind": "blocks",
        # A token is bound to its route: the pixel's, the link's, the unsubscribe page's.
        "token /t/o/{token}": open_token(secret, email_id),
        "token /t/c/{token}": click_token(secret, email_id, "https://x.example/"),
        "token /u/{token}": unsubscribe_token(
            secret, email_id, sender.account, sender.api_user, "u@gmail.example"
        ),
    }


def request_of(
    case: Case, auth: dict[str, str], cookie: str, ids: dict[str, str] | None
) -> httpx.Request:
    """The case as schemathesis serialises it, with our credentials instead of its guesses."""
    if ids is not None and case.path_parameters:
        path = case.operation.path
        case.path_parameters = {
            k: ids.get(f"{k} {path}", ids.get(k, v)) for k, v in case.path_parameters.items()
        }
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    headers = {
        k: v
        for k, v in kwargs["headers"].items()
        if k.lower() not in {"authorization", "cookie", "connection"}
    }
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        params=kwargs.get("params"),
        headers={**headers, **auth, "cookie": cookie, "x-csrf-token": CSRF},
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        files=kwargs.get("files"),
    ).prepare()
    assert prepared.method is not None and prepared.url is not None
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    return httpx.Request(prepared.method, prepared.url, headers=prepared.headers, content=body)


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_no_generated_request_is_a_server_error(
    client: httpx.AsyncClient, sender: Sender, engine_config: EngineConfig, name: str
) -> None:
    operation = OPERATIONS[name]
    session = Session(
        CSRF, sender.account, f"admin@{sender.account}.example", int(time.time()) + 600
    )
    cookie = f"{COOKIE}={SessionCodec(engine_config.secret).encode(session)}"
    ids = await real_ids(client, sender, engine_config.secret)
    cases: list[tuple[Case, bool, bool]] = []

    # Hypothesis cannot drive an async test, so it only draws the cases here.
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(), basic=st.booleans(), real=st.booleans())
    def draw(case: Case, basic: bool, real: bool) -> None:
        cases.append((case, basic, real))

    draw()
    assert cases
    for case, basic, real in cases:
        auth = sender.basic if basic else sender.bearer
        request = request_of(case, auth, cookie, ids if real else None)
        response = await client.send(request)
        detail = f"{request.method} {request.url}\n{request.content[:300]!r}\n{response.text[:500]}"
        assert response.status_code < 500, detail
        if request.url.path.startswith("/v1/") and response.status_code >= 400:
            answer = response.json()
            # The error shape, or a write answered per item (CONTRACT: 400 when none went in).
            assert set(answer.get("error", {})) == API_ERROR_KEYS or "results" in answer, detail
