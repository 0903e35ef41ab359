"""What the security tests share: the app's routes, sessions, and two accounts, one of
which owns something of every kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from conftest import Sender
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from app.runtime import connect
from queue_engine.config import EngineConfig
from queue_engine.suppression import SuppressionList
from web.api import ApiConfig
from web.app import create_web_app
from web.ratelimit import RateLimits
from web.session import COOKIE, Session, SessionCodec

CSRF = "matrix-csrf"
BASE_URL = "http://mailpulse.test"

SECRET_RECIPIENT = "acme-secret@gmail.example"
SECRET_TAG = "acme-secret-tag"
ENTRIES = {
    SuppressionList.BLOCKS: "blocked-by-acme@x.example",
    SuppressionList.UNSUBSCRIBES: "unsub-by-acme@x.example",
    SuppressionList.EXEMPTIONS: "exempt-by-acme@x.example",
    SuppressionList.COMPLAINTS: "complained-acme@x.example",
}


def app_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route of the app, through mounts; "WS" for websockets,
    `{path}` for a mounted app (the static files). HEAD is GET's."""
    for route in routes:
        if isinstance(route, Route):
            for method in sorted(set(route.methods or ()) - {"HEAD"}):
                yield method, prefix + route.path
        elif isinstance(route, WebSocketRoute):
            yield "WS", prefix + route.path
        elif isinstance(route, Mount):
            if route.routes:
                yield from app_routes(route.routes, prefix + route.path)
            else:
                yield "GET", prefix + route.path + "/{path}"


def build_app(
    redis_url: str, engine_config: EngineConfig, rate_limits: RateLimits | None = None
) -> Starlette:
    # No limits unless asked: the matrix makes many failed calls from one address.
    limits = rate_limits or RateLimits(0, 0, 0)
    return create_web_app(ApiConfig(engine=engine_config, rate_limits=limits), connect(redis_url))


def session_cookie(secret: bytes, account: str | None) -> str:
    email = f"admin@{account}.example" if account else None
    session = Session(CSRF, account, email, int(time.time()) + 600)
    return f"{COOKIE}={SessionCodec(secret).encode(session)}"


@dataclass(frozen=True)
class World:
    """acme owns one of everything; other is a second account that must see none of it."""

    acme: Sender
    other: Sender
    email_id: str
    task_id: str
    queue_tag: str
    acme_cookie: str
    other_cookie: str

    @property
    def secrets(self) -> list[str]:
        """What only acme's own data holds: a response to other must never show it."""
        return [SECRET_RECIPIENT, SECRET_TAG, self.task_id, *ENTRIES.values()]


PUBLIC = {
    ("GET", "/healthz"): "liveness for load balancers; says nothing but ok",
    ("GET", "/openapi.json"): "the API's description, the same for everyone",
    ("GET", "/metrics"): "Prometheus; no address or id in any label, guarded by "
    "MAILPULSE_METRICS_TOKEN / _ALLOW (tests/prometheus/test_metrics_endpoint.py)",
    ("GET", "/t/o/{token}"): "open pixel: the HMAC-signed token is the credential",
    ("GET", "/t/c/{token}"): "tracked link: the HMAC-signed token is the credential",
    ("GET", "/u/{token}"): "unsubscribe page: the HMAC-signed token is the credential",
    ("POST", "/u/{token}"): "RFC 8058 one-click: the HMAC-signed token is the credential",
    ("GET", "/login"): "the login form",
    ("POST", "/login"): "logging in (CSRF-checked, rate limited)",
    ("GET", "/static/{path}"): "the console's scripts, styles and licences",
}

WEBSOCKETS = {
    "/ws/queues": "tests/console/test_console_security.py::"
    "test_the_socket_needs_a_session_of_this_origin_and_shows_only_its_account",
}

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BODIES: dict[tuple[str, str], tuple[str, Any]] = {
    # What the other account sends: each aims at acme's things.
    ("POST", "/v1/mail/send"): (
        JSON,
        {"from": "o@other.example", "to": ["x@gmail.example"], "text": "t", "api_user": "acme-tx"},
    ),
    ("POST", "/v1/queues/{api_user}/{domain}/resume"): (JSON, None),
    ("POST", "/v1/queues/{api_user}/{domain}/pause"): (JSON, {"seconds": 60}),
    ("POST", "/v1/exports"): (JSON, {"filter": {"api_user": "acme-tx"}}),
    ("POST", "/v1/exports/{task_id}/retry"): (JSON, None),
    ("POST", "/v1/suppressions/blocks/upload"): ("text/csv", "x@y.example,acme-tx\n"),
    **{
        ("POST", f"/v1/suppressions/{kind}"): (
            JSON,
            {"items": [{"address": "x@y.example", "api_user": "acme-tx"}]},
        )
        for kind in ("blocks", "unsubscribes", "exemptions")
    },
    **{
        ("DELETE", f"/v1/suppressions/{kind.value}"): (
            JSON,
            {"items": [{"address": address}]},
        )
        for kind, address in ENTRIES.items()
    },
    ("POST", "/logout"): (FORM, {}),
    ("POST", "/queues/{api_user}/{domain}/resume"): (FORM, {}),
    ("POST", "/suppressions/{kind}/add"): (FORM, {"target": "x@y.example", "api_user": "acme-tx"}),
    ("POST", "/suppressions/{kind}/delete"): (
        FORM,
        {"entry": list(ENTRIES.values()), "confirm": "yes"},
    ),
    ("POST", "/suppressions/blocks/upload"): ("multipart", b"x@y.example,acme-tx\n"),
    ("POST", "/exports"): (FORM, {"api_user": "acme-tx"}),
    ("POST", "/exports/{task_id}/retry"): (FORM, {}),
}


def _routes() -> list[tuple[str, str]]:
    app = build_app("redis://127.0.0.1:1/0", EngineConfig())
    return sorted(set(app_routes(app.routes)))


ROUTES = _routes()
API = [(m, p) for m, p in ROUTES if p.startswith("/v1/")]
CONSOLE = [(m, p) for m, p in ROUTES if (m, p) not in PUBLIC and m != "WS" and (m, p) not in API]


def request(
    method: str,
    path: str,
    world: World,
    headers: dict[str, str],
    kind: str = "blocks",
    csrf: str | None = CSRF,
) -> httpx.Request:
    """A request from anyone to one of acme's things at this route (with the CSRF
    token of the sessions these tests make, unless told otherwise)."""
    url = BASE_URL + (
        path.replace("{email_id}", world.email_id)
        .replace("{task_id}", world.task_id)
        .replace("{api_user}", world.acme.api_user)
        .replace("{domain}", "gmail.example")
        .replace("{kind}", kind)
        .replace("{path}", "app.js")
    )
    headers = {**headers, "x-csrf-token": csrf} if csrf is not None else headers
    ctype, body = BODIES.get((method, path), (None, None))
    if ctype == JSON and body is not None:
        return httpx.Request(method, url, headers=headers, json=body)
    if ctype == FORM:
        return httpx.Request(method, url, headers=headers, data=body)
    if ctype == "multipart":
        return httpx.Request(method, url, headers=headers, files={"file": ("b.csv", body)})
    if ctype is not None:
        return httpx.Request(method, url, headers={**headers, "content-type": ctype}, content=body)
    return httpx.Request(method, url, headers=headers)
