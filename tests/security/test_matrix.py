"""The security matrix. Every route of the app, enumerated from the app itself:

- refuses the unauthenticated: an API route with 401 (and `WWW-Authenticate`),
  a console route by sending the browser to the login form (or 403 for a
  form), unless it is in PUBLIC with the reason it may be;
- never shows one account's data to another: the second account's
  credentials on the first account's ids get 404, its listings and pages
  show none of the first's data, and its writes change none of it.

A new route is in the matrix the day it lands; one with a body needs an entry
in BODIES first, and a new websocket a test of its own (WEBSOCKETS).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import Sender
from redis.asyncio import Redis
from security.world import (
    API,
    BODIES,
    CONSOLE,
    CSRF,
    ENTRIES,
    PUBLIC,
    ROUTES,
    SECRET_RECIPIENT,
    WEBSOCKETS,
    World,
    request,
    session_cookie,
)

from queue_engine import keys
from queue_engine.config import EngineConfig
from queue_engine.queues import QueueStore
from queue_engine.suppression import ListFilter, SuppressionList, Suppressions
from queue_engine.tracking import unsubscribe_token


def test_every_route_is_in_the_matrix() -> None:
    assert set(ROUTES) >= set(PUBLIC), "PUBLIC names a route the app no longer has"
    assert {p for m, p in ROUTES if m == "WS"} == set(WEBSOCKETS)
    assert len(API) > 20 and len(CONSOLE) > 8
    with_body = {(m, p) for m, p in API + CONSOLE if m in {"POST", "PUT", "PATCH", "DELETE"}}
    assert with_body - set(BODIES) == set(), "give each new route with a body its BODIES entry"


def _basic(user: str, key: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def strangers(world: World) -> dict[str, dict[str, str]]:
    acme = world.acme
    return {
        "no credentials": {},
        "wrong key": _basic(acme.api_user, acme.api_key[:-1] + "x"),
        "unknown API_USER": _basic("nobody", acme.api_key),
        "account key as Basic": _basic(acme.account, acme.account_key),
        "API key as Bearer": {"authorization": f"Bearer {acme.api_key}"},
        "guessed Bearer": {"authorization": "Bearer mpa_" + "A" * 43},
        "malformed Basic": {"authorization": "Basic %%%"},
        "other scheme": {"authorization": f"Digest {acme.api_key}"},
        "console session": {"cookie": world.acme_cookie},  # the console's, not the API's
    }


async def acme_is_untouched(redis: Redis, world: World) -> None:
    """Nothing the other account did changed acme's data."""
    record = await redis.hgetall(keys.email(world.email_id))
    assert record["status"] == "requesting" and record["api_user"] == "acme-tx"
    assert await QueueStore(redis).get_pause(world.queue_tag) is not None
    store = Suppressions(redis)
    for kind, address in ENTRIES.items():
        page = await store.page(world.acme.account, kind, ListFilter(address=address))
        assert [e.target for e in page.entries] == [address], kind
    async for key in redis.scan_iter(match=keys.email("*")):
        if key != keys.email(world.email_id):  # the other account's own sends, as itself
            assert await redis.hget(key, "api_user") == world.other.api_user


@pytest.mark.parametrize(("method", "path"), API)
async def test_an_api_route_refuses_whoever_is_not_authenticated(
    open_client: httpx.AsyncClient, redis: Redis, world: World, method: str, path: str
) -> None:
    for name, headers in strangers(world).items():
        response = await open_client.send(request(method, path, world, headers))
        assert response.status_code == 401, (name, response.text)
        assert response.headers["www-authenticate"].startswith("Basic")
        error = response.json()["error"]
        assert error["code"] == "unauthorized" and error["message"], name
        assert not any(s in response.text for s in world.secrets), name
    await acme_is_untouched(redis, world)


@pytest.mark.parametrize(("method", "path"), CONSOLE)
async def test_a_console_route_sends_whoever_is_not_logged_in_to_the_login_form(
    open_client: httpx.AsyncClient,
    redis: Redis,
    world: World,
    engine_config: EngineConfig,
    method: str,
    path: str,
) -> None:
    anonymous = session_cookie(engine_config.secret, None)  # a visitor, with a CSRF token
    forged = session_cookie(b"not our secret", world.acme.account)
    for name, headers in {
        "no cookie": {},
        "anonymous session": {"cookie": anonymous},
        "forged session": {"cookie": forged},
        "API credentials": world.acme.basic,
    }.items():
        sent = request(method, path, world, headers)
        response = await open_client.send(sent)
        assert not any(s in response.text for s in world.secrets), name
        if response.status_code == 303:
            target = urlsplit(response.headers["location"])
            assert target.path == "/login", name
            if path != "/logout":  # a visitor's own (empty) session may be ended
                assert parse_qs(target.query)["next"] == [sent.url.path], name
        else:  # a form without a session that carries its token
            assert (method, response.status_code) == ("POST", 403), (name, response.text)
    await acme_is_untouched(redis, world)


def _other_auths(world: World) -> dict[str, dict[str, str]]:
    return {
        "other's API_USER": world.other.basic,
        "other's account key": world.other.bearer,
        "other's console session": {"cookie": world.other_cookie},
    }


@pytest.mark.parametrize(("method", "path"), API + CONSOLE)
async def test_another_account_gets_404_for_acme_ids_and_sees_none_of_its_data(
    open_client: httpx.AsyncClient, redis: Redis, world: World, method: str, path: str
) -> None:
    kinds = [k.value for k in SuppressionList] if "{kind}" in path else ["blocks"]
    api = path.startswith("/v1/")
    for name, headers in _other_auths(world).items():
        if api == ("cookie" in headers):
            continue  # API routes take the API's credentials, console routes the session
        for kind in kinds:
            response = await open_client.send(request(method, path, world, headers, kind))
            context = (name, kind, response.status_code, response.text[:300])
            assert response.status_code < 500, context
            assert not any(s in response.text for s in world.secrets), context
            if any(f"{{{p}}}" in path for p in ("email_id", "task_id")) or (
                api and "{api_user}" in path
            ):
                assert response.status_code == 404, context
            if method == "GET" and api and "{" not in path and path != "/v1/suppressions/bounces":
                # Listings: asking for acme's API_USER by name is a 404 or an empty answer.
                named = await open_client.get(path, params={"api_user": "acme-tx"}, headers=headers)
                assert named.status_code in (200, 400, 404), (context, named.text)
                assert "acme-tx" not in named.text.replace("'acme-tx'", ""), named.text
                assert not any(s in named.text for s in world.secrets), named.text
    await acme_is_untouched(redis, world)


async def test_guessed_and_enumerated_ids_are_404(
    open_client: httpx.AsyncClient, world: World
) -> None:
    """Ids near acme's (one digit off), and a walk over a small id space."""
    near = [world.email_id[:-1] + c for c in "0123456789abcdef" if c != world.email_id[-1]]
    guesses = [*near, *(f"{i:028x}" for i in range(64))]
    for auth in (world.other.basic, world.other.bearer):
        for guess in guesses:
            response = await open_client.get(f"/v1/emails/{guess}", headers=auth)
            assert response.status_code == 404, guess
            response = await open_client.get(f"/v1/exports/{guess}", headers=auth)
            assert response.status_code == 404, guess
    for guess in near[:4]:
        page = await open_client.get(f"/emails/{guess}", headers={"cookie": world.other_cookie})
        assert page.status_code == 404


async def test_a_sibling_api_user_sees_only_its_own(
    open_client: httpx.AsyncClient,
    world: World,
    make_sender: Any,
) -> None:
    """Within one account, an API_USER's Basic key reaches only its own emails."""
    sibling: Sender = await make_sender("acme", "acme-mk", "marketing")
    response = await open_client.get(f"/v1/emails/{world.email_id}", headers=sibling.basic)
    assert response.status_code == 404
    listing = await open_client.get("/v1/emails", headers=sibling.basic)
    assert SECRET_RECIPIENT not in listing.text
    resume = f"/v1/queues/{world.acme.api_user}/gmail.example/resume"
    assert (await open_client.post(resume, headers=sibling.basic)).status_code == 404
    # The account key sees both.
    response = await open_client.get(f"/v1/emails/{world.email_id}", headers=world.acme.bearer)
    assert response.status_code == 200 and response.json()["recipient"] == SECRET_RECIPIENT


async def test_an_unsubscribe_token_acts_only_for_the_account_it_names(
    open_client: httpx.AsyncClient, redis: Redis, world: World, engine_config: EngineConfig
) -> None:
    """The token is the credential of the public unsubscribe routes: it carries its
    account, so a valid one of acme's unsubscribes in acme's list and nowhere else."""
    token = unsubscribe_token(
        engine_config.secret, world.email_id, "acme", "acme-tx", SECRET_RECIPIENT
    )
    response = await open_client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    store = Suppressions(redis)
    flt = ListFilter(address=SECRET_RECIPIENT)
    acme = await store.page("acme", SuppressionList.UNSUBSCRIBES, flt)
    other = await store.page("other", SuppressionList.UNSUBSCRIBES, flt)
    assert [e.target for e in acme.entries] == [SECRET_RECIPIENT] and other.entries == []


CONSOLE_ACTIONS = [(m, p) for m, p in CONSOLE if m != "GET"]


@pytest.mark.parametrize(("method", "path"), CONSOLE_ACTIONS)
async def test_every_console_action_needs_the_sessions_csrf_token(
    open_client: httpx.AsyncClient, redis: Redis, world: World, method: str, path: str
) -> None:
    """acme's own session, without its token or with another: refused, nothing done."""
    for token in (None, "", "forged", CSRF + "x"):
        sent = request(method, path, world, {"cookie": world.acme_cookie}, csrf=token)
        response = await open_client.send(sent)
        assert response.status_code == 403, (token, response.text[:300])
        assert "This form has expired" in response.text
    await acme_is_untouched(redis, world)


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] != "WS"])
async def test_every_route_answers_with_the_security_headers(
    open_client: httpx.AsyncClient, world: World, method: str, path: str
) -> None:
    auth = world.acme.basic if path.startswith("/v1/") else {"cookie": world.acme_cookie}
    response = await open_client.send(request(method, path, world, auth))
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    csp = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split("; ")}
    assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
