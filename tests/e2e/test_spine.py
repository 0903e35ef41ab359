"""One email's whole path on real parts: API → Redis → engine → SMTP MP → status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email import message_from_bytes
from typing import Any

import httpx

Wait = Callable[..., Awaitable[Any]]


async def send(
    client: httpx.AsyncClient, auth: dict[str, str], to: list[str], **extra: Any
) -> list[str]:
    body = {"from": "Shop <shop@acme.example>", "to": to, "subject": "Hello", "text": "Hi", **extra}
    response = await client.post("/v1/mail/send", json=body, headers=auth)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["email_ids"]
    assert len(ids) == len(to)
    return ids


async def get(client: httpx.AsyncClient, auth: dict[str, str], email_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/emails/{email_id}", headers=auth)
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()
    return item


async def final(
    client: httpx.AsyncClient, auth: dict[str, str], email_id: str, wait: Wait
) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        item = await get(client, auth, email_id)
        return item if item["status"] != "requesting" else None

    result: dict[str, Any] = await wait(done)
    return result


async def test_hundred_emails_are_delivered_with_every_field(
    client, sender, mp, start_engine, wait_for
):
    await start_engine(mp)
    to = [f"user{i}@gmail.example" for i in range(100)]
    ids = await send(client, sender.basic, to, tag="welcome")

    async def delivered() -> bool:
        r = await client.get(
            "/v1/emails", params={"status": "delivered", "limit": 1000}, headers=sender.basic
        )
        return len(r.json()["items"]) == 100

    await wait_for(delivered)
    listing = (await client.get("/v1/emails", params={"limit": 1000}, headers=sender.basic)).json()
    by_id = {item["email_id"]: item for item in listing["items"]}
    assert set(by_id) == set(ids)
    for email_id, rcpt in zip(ids, to, strict=True):
        item = by_id[email_id]
        assert item["status"] == "delivered" and item["reason"] is None
        assert item["api_user"] == sender.api_user
        assert item["recipient"] == rcpt
        assert item["type"] == "transactional" and item["tag"] == "welcome"
        assert (
            item["request_time"] and item["send_time"] and item["send_time"] >= item["request_time"]
        )
        assert item["request_ip"] == "203.0.113.7"
        assert item["sending_ip"] == "127.0.0.1"
        assert item["mp_reply"].startswith("250 ")
        assert item["billable"] is True
        [entry] = item["delivery_log"]
        assert entry["code"] == 250 and entry["mx"] == f"mp.test:{mp.port}"
    # The MP got each email once, addressed to its own recipient, over reused connections.
    assert sorted(r.rcpt_to for r in mp.state.received) == sorted(to)
    for received in mp.state.received:
        msg = message_from_bytes(received.data)
        assert msg["To"] == received.rcpt_to
        assert msg["Subject"] == "Hello"
        assert msg["Message-ID"].startswith("<") and msg["Message-ID"][1:29] in ids
    assert len(mp.state.peers) < 100


async def test_permanent_failure_ends_invalid(client, sender, mp, start_engine, wait_for):
    await start_engine(mp)
    [email_id] = await send(client, sender.basic, ["unknown1@gmail.example"])
    item = await final(client, sender.basic, email_id, wait_for)
    assert item["status"] == "invalid"
    assert item["reason"] == "address_not_exist"
    assert item["mp_reply"].startswith("550 5.1.1")
    assert item["billable"] is True
    assert item["send_time"] is None


async def test_temporary_failure_is_retried_then_delivered(
    client, sender, mp, start_engine, wait_for
):
    await start_engine(mp)
    [email_id] = await send(client, sender.basic, ["tempfail1@gmail.example"])
    item = await final(client, sender.basic, email_id, wait_for)
    assert item["status"] == "delivered"
    first, second = item["delivery_log"]
    assert first["code"] == 421 and first["outcome"] == "temporary"
    assert second["code"] == 250 and second["outcome"] == "delivered"
    assert item["attempts"] == 2
    assert mp.state.rcpt_attempts["tempfail1@gmail.example"] == 2


async def test_bad_address_is_logged_invalid_without_attempt(
    client, sender, mp, start_engine, wait_for
):
    await start_engine(mp)
    bad, good = await send(client, sender.basic, ["not-an-address", "fine@gmail.example"])
    item = await get(client, sender.basic, bad)
    assert item["status"] == "invalid" and item["reason"] == "address_format_error"
    assert item["billable"] is False and item["delivery_log"] == []
    assert (await final(client, sender.basic, good, wait_for))["status"] == "delivered"
    assert [r.rcpt_to for r in mp.state.received] == ["fine@gmail.example"]
    assert "not-an-address" not in mp.state.rcpt_attempts


async def test_dropped_connection_is_retried_until_max_age(
    client, sender, mp, start_engine, wait_for
):
    await start_engine(mp, max_age_seconds=1.0)
    [email_id] = await send(client, sender.basic, ["drop1@gmail.example"])
    item = await final(client, sender.basic, email_id, wait_for)
    assert item["status"] == "invalid" and item["reason"] == "other"
    assert item["attempts"] >= 2
    assert all(e["outcome"] == "temporary" for e in item["delivery_log"][:-1])
    assert "connection lost" in item["delivery_log"][0]["reply"]


async def test_unreachable_server_ends_server_unreachable(
    client, sender, mp, start_engine, wait_for
):
    port = mp.port
    await mp.stop()  # nothing listens there any more: every connect is refused
    from queue_engine.routing import Destination

    await start_engine(
        routes={"*": Destination("127.0.0.1", port, "gone.test")}, max_age_seconds=1.0
    )
    [email_id] = await send(client, sender.basic, ["user@gmail.example"])
    item = await final(client, sender.basic, email_id, wait_for)
    assert item["status"] == "invalid" and item["reason"] == "server_unreachable"
    assert item["billable"] is False
    assert "connection failed" in item["delivery_log"][0]["reply"]


async def test_two_engines_share_queues_without_duplicates(
    client, sender, mp, start_engine, wait_for
):
    await start_engine(mp)
    await start_engine(mp)
    to = [f"user{i}@{d}" for i in range(150) for d in ("gmail.example", "qq.example")]
    await send(client, sender.basic, to[:1000])

    async def all_delivered() -> bool:
        return mp.state.accepted >= len(to)

    await wait_for(all_delivered)
    assert sorted(r.rcpt_to for r in mp.state.received) == sorted(to)


async def test_lines_starting_with_a_dot_arrive_intact(client, sender, mp, start_engine, wait_for):
    await start_engine(mp)
    text = "first\n.second starts with a dot\n.\nlast"
    [email_id] = await send(client, sender.basic, ["dots@gmail.example"], text=text)
    assert (await final(client, sender.basic, email_id, wait_for))["status"] == "delivered"
    [received] = mp.state.received
    body = message_from_bytes(received.data).get_payload(decode=True).decode()
    assert body.replace("\r\n", "\n").rstrip("\n") == text
