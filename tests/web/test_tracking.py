"""The public tracking routes: pixel, redirect, unsubscribe page and one-click POST."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from api_calls import email_record, send_to

from app.runtime import connect
from queue_engine import keys
from queue_engine.records import new_email_id
from queue_engine.tracking import (
    MAX_TOKEN_CHARS,
    click_token,
    open_token,
    unsubscribe_token,
)
from web.api import ApiConfig
from web.app import create_web_app
from web.tracking import PIXEL

REASONS = ["unwanted", "never_subscribed", "spam", "fraud"]


@pytest.fixture
def secret(engine_config) -> bytes:
    return engine_config.secret  # type: ignore[no-any-return]


async def send_one(client, sender, to: str = "ann@example.com") -> str:
    return await send_to(client, sender, to, html="<p>hi</p>")


async def unsubscribes(client, sender) -> list[dict[str, Any]]:
    response = await client.get("/v1/suppressions/unsubscribes", headers=sender.bearer)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_the_pixel_records_an_open(client, sender, secret):
    email_id = await send_one(client, sender)
    response = await client.get(
        f"/t/o/{open_token(secret, email_id)}", headers={"user-agent": "Mail/1.0 (Mac)"}
    )
    assert response.status_code == 200
    assert response.content == PIXEL and len(PIXEL) == 43
    assert response.headers["content-type"] == "image/gif"
    assert "no-store" in response.headers["cache-control"]
    item = await email_record(client, sender, email_id)
    assert item["open_count"] == 1 and item["click_count"] == 0
    [opened] = item["opens"]
    assert opened["ip"] == "203.0.113.7" and opened["user_agent"] == "Mail/1.0 (Mac)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", opened["time"])
    # A HEAD probe is answered but is no open.
    assert (await client.head(f"/t/o/{open_token(secret, email_id)}")).status_code == 200
    await client.get(f"/t/o/{open_token(secret, email_id)}")
    listed = (await client.get("/v1/emails", headers=sender.basic)).json()["items"]
    assert [(i["email_id"], i["open_count"], len(i["opens"])) for i in listed] == [(email_id, 2, 2)]


async def test_a_click_redirects_to_its_link_and_is_recorded(client, sender, secret):
    email_id = await send_one(client, sender)
    url = "https://shop.example.com/sale?a=1&b=caf%C3%A9#top"
    response = await client.get(
        f"/t/c/{click_token(secret, email_id, url)}", headers={"user-agent": "Phone"}
    )
    assert response.status_code == 302
    assert response.headers["location"] == url
    assert "no-store" in response.headers["cache-control"]
    item = await email_record(client, sender, email_id)
    [clicked] = item["clicks"]
    assert (clicked["url"], clicked["ip"], clicked["user_agent"]) == (url, "203.0.113.7", "Phone")
    assert item["click_count"] == 1 and item["open_count"] == 0


@pytest.fixture
async def proxied_client(redis_url, redis, engine_config) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a trusted proxy at 203.0.113.0/24 (the test client's network)."""
    config = ApiConfig(
        engine=engine_config, trusted_proxies=(ipaddress.ip_network("203.0.113.0/24"),)
    )
    app = create_web_app(config, connect(redis_url))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://mailpulse.test") as c:
        yield c


async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    client, proxied_client, sender, secret
):
    email_id = await send_one(client, sender)
    token = open_token(secret, email_id)
    forwarded = {"x-forwarded-for": "192.0.2.50, 198.51.100.9"}
    await client.get(f"/t/o/{token}", headers=forwarded)  # untrusted: the peer counts
    await proxied_client.get(f"/t/o/{token}", headers=forwarded)  # the hop before the proxy
    opens = (await email_record(client, sender, email_id))["opens"]
    assert [o["ip"] for o in opens] == ["203.0.113.7", "198.51.100.9"]


async def test_tampered_and_garbage_tokens_get_404_and_no_redirect(client, sender, secret):
    email_id = await send_one(client, sender)
    good = click_token(secret, email_id, "https://shop.example.com/")
    forged = click_token(b"not our key", email_id, "https://evil.example/")
    swapped = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
    opened = open_token(secret, email_id)
    for token in (
        forged,
        swapped,
        good[:-2],
        opened,  # an open token is no click token (and a click token no pixel)
        "x" * (MAX_TOKEN_CHARS + 1),
        "not-a-token",
        "%00%0d%0aLocation:%20https://evil.example",
        "é",
    ):
        response = await client.get(f"/t/c/{token}")
        assert response.status_code == 404, token
        assert "location" not in response.headers
        assert response.json()["error"]["code"] == "not_found"
        pixel = await client.get(f"/t/o/{token if token != opened else good}")
        assert pixel.status_code == 404 and "location" not in pixel.headers
    item = await email_record(client, sender, email_id)
    assert item["open_count"] == item["click_count"] == 0


async def test_an_unknown_email_is_served_but_nothing_is_written(client, redis, secret):
    email_id = new_email_id(1_800_000_000_000)  # genuine token, no record (expired, say)
    assert (await client.get(f"/t/o/{open_token(secret, email_id)}")).status_code == 200
    response = await client.get(f"/t/c/{click_token(secret, email_id, 'https://x.example/')}")
    assert response.status_code == 302 and response.headers["location"] == "https://x.example/"
    assert await redis.exists(keys.email(email_id)) == 0


def unsubscribe_path(secret: bytes, email_id: str, sender, address: str) -> str:
    return f"/u/{unsubscribe_token(secret, email_id, sender.account, sender.api_user, address)}"


async def test_the_page_asks_and_changes_nothing(client, sender, secret):
    email_id = await send_one(client, sender)
    path = unsubscribe_path(secret, email_id, sender, "ann@example.com")
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "ann@example.com" in page
    assert re.search(rf'<form method="post" action="{re.escape(path)}">', page)
    assert re.findall(r'name="reason" value="([a-z_]+)"', page) == REASONS
    assert "I never subscribed to this" in page and "<script" not in page
    assert 'style="' not in page  # CSP: no inline styles
    css = await client.get("/static/unsubscribe.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert await unsubscribes(client, sender) == []
    assert (await email_record(client, sender, email_id))["unsubscribe"] is None


async def test_one_click_unsubscribes_once(client, sender, secret):
    email_id = await send_one(client, sender, "Ann@Example.com")
    path = unsubscribe_path(secret, email_id, sender, "Ann@Example.com")
    one_click = {"content": "List-Unsubscribe=One-Click"}
    form = {"content-type": "application/x-www-form-urlencoded"}
    for _ in range(3):  # mailbox providers retry; the second and third change nothing
        response = await client.post(path, headers=form, **one_click)  # type: ignore[arg-type]
        assert response.status_code == 200
        assert "You are unsubscribed" in response.text
    [entry] = await unsubscribes(client, sender)
    assert entry["address"] == "ann@example.com"
    assert entry["reason"] == "not_given"
    unsub = (await email_record(client, sender, email_id))["unsubscribe"]
    assert unsub["reason"] == "not_given" and unsub["time"]


@pytest.mark.parametrize("reason", REASONS)
async def test_the_page_form_unsubscribes_with_the_reason_picked(client, sender, secret, reason):
    email_id = await send_one(client, sender)
    response = await client.post(
        unsubscribe_path(secret, email_id, sender, "ann@example.com"), data={"reason": reason}
    )
    assert response.status_code == 200 and "ann@example.com" in response.text
    [entry] = await unsubscribes(client, sender)
    assert (entry["address"], entry["reason"]) == ("ann@example.com", reason)
    assert (await email_record(client, sender, email_id))["unsubscribe"]["reason"] == reason


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({"content-type": "multipart/form-data; boundary=b"},
         b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
         b"One-Click\r\n--b--\r\n"),
        ({"content-type": "application/x-www-form-urlencoded"}, b"reason=bogus"),
        ({"content-type": "application/x-www-form-urlencoded"}, b"reason=" + b"x" * 5000),
        ({"content-type": "application/x-www-form-urlencoded"}, b"reason=spam&" * 30),
        ({"content-type": "application/x-www-form-urlencoded"}, b"reason=\xff"),
        ({}, b""),
    ],
)  # fmt: skip
async def test_any_other_post_body_means_no_reason_given(client, sender, secret, headers, content):
    email_id = await send_one(client, sender)
    path = unsubscribe_path(secret, email_id, sender, "ann@example.com")
    response = await client.post(path, headers=headers, content=content)
    assert response.status_code == 200
    [entry] = await unsubscribes(client, sender)
    assert entry["reason"] == "not_given"


async def test_a_link_scanner_that_only_gets_unsubscribes_nobody(client, sender, secret):
    email_id = await send_one(client, sender)
    paths = [
        unsubscribe_path(secret, email_id, sender, "ann@example.com"),
        f"/t/o/{open_token(secret, email_id)}",
        f"/t/c/{click_token(secret, email_id, 'https://shop.example.com/')}",
    ]
    for path in paths:
        for method in ("GET", "HEAD", "OPTIONS"):
            response = await client.request(method, path)
            assert response.status_code in (200, 302, 405), (method, path)
    assert await unsubscribes(client, sender) == []
    assert (await email_record(client, sender, email_id))["unsubscribe"] is None


async def test_a_bad_unsubscribe_link_is_a_404_page_and_changes_nothing(client, sender, secret):
    email_id = await send_one(client, sender)
    good = unsubscribe_path(secret, email_id, sender, "ann@example.com")
    other = unsubscribe_token(secret, email_id, sender.account, sender.api_user, "bob@x.example")
    # Another address's signature on this address's token does not carry over.
    spliced = good[:-16] + other[-16:]
    for path in (spliced, "/u/garbage", f"/u/{open_token(secret, email_id)}", "/u/" + "A" * 5000):
        for method in ("GET", "POST"):
            response = await client.request(method, path)
            assert response.status_code == 404
            assert "This link is not valid" in response.text
    assert await unsubscribes(client, sender) == []
