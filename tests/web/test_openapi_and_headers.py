"""The OpenAPI document matches the app's routes; health; security headers; error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from app.runtime import connect
from web.api import ApiConfig
from web.app import create_web_app

KNOWN_PATHS = {"/v1/mail/send", "/v1/emails", "/v1/emails/{email_id}", "/healthz", "/openapi.json"}


@pytest.fixture
async def app(redis_url, engine_config) -> AsyncIterator[Starlette]:
    """An app built the way the `client` fixture builds its own, to read its routes."""
    redis = connect(redis_url)
    yield create_web_app(ApiConfig(engine=engine_config), redis)
    await redis.aclose()


def http_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every HTTP route, through mounts; HEAD is implied by GET."""
    for route in routes:
        if isinstance(route, Route):
            yield prefix + route.path, set(route.methods or ()) - {"HEAD"}
        elif isinstance(route, Mount):
            yield from http_routes(route.routes, prefix + route.path)


async def get_spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    spec: dict[str, Any] = response.json()
    return spec


async def test_openapi_lists_every_route_of_the_app(client, app):
    spec = await get_spec(client)
    assert spec["openapi"].startswith("3.")
    routes = list(http_routes(app.routes))
    assert {path for path, _ in routes} >= KNOWN_PATHS
    missing = [
        f"{method} {path}"
        for path, methods in routes
        for method in sorted(methods)
        if method.lower() not in spec["paths"].get(path, {})
    ]
    assert missing == []


async def test_openapi_lists_no_route_the_app_lacks(client, app):
    spec = await get_spec(client)
    served = {(path, m.lower()) for path, methods in http_routes(app.routes) for m in methods}
    operations = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    documented = {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in operations
    }
    assert documented - served == set()


async def test_openapi_operations_declare_responses_and_path_parameters(client):
    spec = await get_spec(client)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], f"{method} {path}"
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert declared == in_path, f"{method} {path}"
    # Every $ref resolves inside the document.
    for ref in refs(spec):
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict)


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_openapi_and_healthz_need_no_credentials(client):
    for path in ("/openapi.json", "/healthz"):
        response = await client.get(path)
        assert response.status_code == 200, path


# --- security headers on every kind of response ---------------------------------------------

Call = Callable[[httpx.AsyncClient, Any], Awaitable[httpx.Response]]

GOOD_SEND = {"from": "shop@acme.example", "to": ["a@gmail.example"], "subject": "S", "text": "T"}

CALLS: dict[str, tuple[Call, int]] = {
    "healthz": (lambda c, s: c.get("/healthz"), 200),
    "openapi": (lambda c, s: c.get("/openapi.json"), 200),
    "list": (lambda c, s: c.get("/v1/emails", headers=s.basic), 200),
    "send": (lambda c, s: c.post("/v1/mail/send", json=GOOD_SEND, headers=s.basic), 202),
    "bad send": (lambda c, s: c.post("/v1/mail/send", json={}, headers=s.basic), 400),
    "unauthenticated": (lambda c, s: c.get("/v1/emails"), 401),
    "unknown email": (lambda c, s: c.get("/v1/emails/" + "0" * 28, headers=s.basic), 404),
    "unknown path": (lambda c, s: c.get("/no/such/path"), 404),
    "wrong method": (lambda c, s: c.delete("/v1/emails"), 405),
    "wrong content type": (
        lambda c, s: c.post(
            "/v1/mail/send", content=b"x", headers={**s.basic, "content-type": "text/plain"}
        ),
        415,
    ),
    "too large": (
        lambda c, s: c.post(
            "/v1/mail/send", headers={**s.basic, "content-length": str(1 << 30)}, content=b"{}"
        ),
        413,
    ),
    "head": (lambda c, s: c.head("/healthz"), 200),
}


@pytest.mark.parametrize("name", list(CALLS))
async def test_every_response_carries_the_security_headers(client, sender, name):
    call, status = CALLS[name]
    response = await call(client, sender)
    assert response.status_code == status, response.text
    headers = response.headers
    assert headers.get_list("x-content-type-options") == ["nosniff"]
    [csp] = headers.get_list("content-security-policy")
    directives = {d.strip().split()[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    [referrer] = headers.get_list("referrer-policy")
    assert referrer in {
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    }


# --- error shapes of the framework's own refusals -------------------------------------------


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    result: dict[str, Any] = error
    return result


@pytest.mark.parametrize("path", ["/nope", "/v1", "/v1/emails/a/b", "/v2/mail/send", "/index.php"])
async def test_unknown_path_is_a_json_404(client, sender, path):
    for auth in ({}, sender.basic):
        response = await client.get(path, headers=auth)
        assert_error_shape(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/emails", "GET"),
        ("POST", "/v1/emails", "GET"),
        ("GET", "/v1/mail/send", "POST"),
        ("PUT", "/v1/mail/send", "POST"),
        ("DELETE", "/v1/emails/" + "0" * 28, "GET"),
        ("POST", "/healthz", "GET"),
        ("PATCH", "/openapi.json", "GET"),
    ],
)
async def test_wrong_method_is_a_json_405(client, sender, method, path, allowed):
    response = await client.request(method, path, headers=sender.basic)
    assert_error_shape(response, 405, "method_not_allowed")
    assert allowed in {m.strip() for m in response.headers["allow"].split(",")}
