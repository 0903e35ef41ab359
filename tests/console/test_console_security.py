"""Sessions, CSRF and account scoping of the console, over HTTP and the websocket."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
import websockets
from console.conftest import session_cookie

from app.runtime import connect
from queue_engine import keys
from queue_engine.queues import QueueStore
from queue_engine.statuses import PauseReason
from web.api import ApiConfig
from web.app import create_web_app
from web.session import COOKIE, Session, SessionCodec


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/login")
    token = _csrf(page.text)
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token, "next": "/"}
    )


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def _paused_queue(client: httpx.AsyncClient, redis: Any, sender: Any) -> str:
    body = {"from": "a@acme.example", "to": ["u@gmail.example"], "text": "t"}
    assert (await client.post("/v1/mail/send", json=body, headers=sender.basic)).status_code == 202
    now = int(time.time() * 1000)
    tag = keys.queue_tag(sender.api_user, "gmail.example")
    await QueueStore(redis).pause(tag, PauseReason.MANUAL, now, now + 3_600_000, "by hand")
    return tag


async def test_login_gives_a_hardened_cookie_and_says_nothing_about_who_exists(
    client, console_user
):
    user = await console_user()
    wrong_password = await _login(client, user.email, "not-it")
    unknown_email = await _login(client, "nobody@acme.example", "not-it")
    for response in (wrong_password, unknown_email):
        assert response.status_code == 200
        assert "Wrong email or password." in response.text
        assert (await client.get("/")).status_code == 303  # not logged in
    response = await _login(client, user.email, user.password)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http here; https gets Secure (below)
    page = await client.get("/")
    assert page.status_code == 200 and "acme-tx" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp


async def test_cookie_is_secure_over_https(redis_url, redis, engine_config, console_user):
    user = await console_user()
    app = create_web_app(ApiConfig(engine=engine_config), connect(redis_url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as https:
        response = await _login(https, user.email, user.password)
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


async def test_posts_without_the_csrf_token_are_refused(client, redis, console_user):
    user = await console_user()
    tag = await _paused_queue(client, redis, user.sender)
    # Login form without its token.
    await client.get("/login")
    refused = await client.post("/login", data={"email": user.email, "password": user.password})
    assert refused.status_code == 403
    assert (await client.get("/")).status_code == 303  # still logged out
    await _login(client, user.email, user.password)
    resume = f"/queues/{user.sender.api_user}/gmail.example/resume"
    assert (await client.post(resume)).status_code == 403
    assert (await client.post(resume, data={"csrf_token": "forged"})).status_code == 403
    assert await QueueStore(redis).get_pause(tag) is not None
    assert (await client.post("/logout")).status_code == 403
    token = _csrf((await client.get("/")).text)
    response = await client.post(resume, data={"csrf_token": token})
    assert response.status_code == 303
    assert await QueueStore(redis).get_pause(tag) is None
    # The htmx way: the token in a header.
    response = await client.post("/logout", headers={"x-csrf-token": token})
    assert response.status_code == 303
    assert (await client.get("/")).status_code == 303


async def test_a_tampered_or_expired_cookie_is_no_session(client, console_user, engine_config):
    user = await console_user()
    await _login(client, user.email, user.password)
    value = client.cookies[COOKIE]
    payload, _, signature = value.partition(".")
    forged = SessionCodec(b"another secret").encode(
        Session("t", "acme", user.email, int(time.time()) + 60)
    )
    for bad in (f"{payload}x.{signature}", forged):
        client.cookies.set(COOKIE, bad)
        assert (await client.get("/")).status_code == 303
    expired = SessionCodec(engine_config.secret).encode(
        Session("t", "acme", user.email, int(time.time()) - 1)
    )
    client.cookies.set(COOKIE, expired)
    assert (await client.get("/")).status_code == 303


async def test_another_account_sees_none_of_it(client, redis, console_user):
    acme = await console_user()
    other = await console_user("other", "other-tx")
    tag = await _paused_queue(client, redis, acme.sender)
    [email_id] = (
        await client.post(
            "/v1/mail/send",
            json={"from": "a@acme.example", "to": ["secret@outlook.example"], "text": "t"},
            headers=acme.sender.basic,
        )
    ).json()["email_ids"]
    await _login(client, other.email, other.password)
    queues = await client.get("/")
    assert "acme-tx" not in queues.text and "gmail.example" not in queues.text
    assert "No active queues" in queues.text
    emails = await client.get("/emails")
    assert "secret@outlook.example" not in emails.text
    assert (await client.get(f"/emails/{email_id}")).status_code == 404
    token = _csrf(queues.text)
    resume = f"/queues/{acme.sender.api_user}/gmail.example/resume"
    assert (await client.post(resume, data={"csrf_token": token})).status_code == 303
    assert await QueueStore(redis).get_pause(tag) is not None  # not theirs: nothing happened


async def _frames(ws: Any, until: str) -> list[str]:
    seen = []
    while True:
        frame = await ws.recv()
        seen.append(frame)
        if until in frame:
            return seen


async def test_the_socket_needs_a_session_of_this_origin_and_shows_only_its_account(
    live, client, redis, console_user, engine_config
):
    acme = await console_user()
    other = await console_user("other", "other-tx")
    tag = await _paused_queue(client, redis, acme.sender)
    url = live.url.replace("http", "ws") + "/ws/queues"
    origin = live.url
    # No session: accepted, then closed with 4401 so the page goes to the login form.
    async with websockets.connect(url, origin=origin) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    # Another site's page: refused at the handshake.
    cookie = session_cookie(engine_config, "acme", acme.email)
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(
            url, origin="http://evil.example", additional_headers={"cookie": cookie}
        ):
            pass
    other_cookie = session_cookie(engine_config, "other", other.email)
    async with websockets.connect(
        url, origin=origin, additional_headers={"cookie": other_cookie}
    ) as ws:
        frames = await _frames(ws, 'id="queue-list"')
        assert not any("acme-tx" in f or "gmail.example" in f for f in frames)
    async with websockets.connect(url, origin=origin, additional_headers={"cookie": cookie}) as ws:
        frames = await _frames(ws, 'id="queue-list"')
        assert any("gmail.example" in f and "Resume" in f for f in frames)
        resume = {"action": "resume", "api_user": "acme-tx", "domain": "gmail.example"}
        await ws.send(json.dumps({**resume, "HEADERS": {"X-CSRF-Token": "forged"}}))
        assert "expired page" in await ws.recv()
        assert await QueueStore(redis).get_pause(tag) is not None
        await ws.send(json.dumps({**resume, "HEADERS": {"X-CSRF-Token": "tok"}}))
        # Frames of a tick before the resume may still be on their way; then the row turns.
        frames = await asyncio.wait_for(_frames(ws, "badge active"), 10)
        assert await QueueStore(redis).get_pause(tag) is None
        assert "Resume" not in frames[-1]


async def test_storage_down_is_a_page_not_a_stack_trace(engine_config):
    app = create_web_app(ApiConfig(engine=engine_config), connect("redis://127.0.0.1:1/0"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as c:
        name, _, value = session_cookie(engine_config, "acme", "a@acme.example").partition("=")
        c.cookies.set(name, value)
        page = await c.get("/", headers={"accept": "text/html"})
        assert page.status_code == 503
        assert "Storage unavailable" in page.text and "Traceback" not in page.text
        api = await c.get("/v1/emails", headers={"authorization": "Bearer x"})
        assert api.status_code == 503 and api.json()["error"]["code"] == "storage_unavailable"
