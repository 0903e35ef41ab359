"""Suppression on real parts: an MP's "no such user" feeds the bounce list, and every
list stops later sends before the MP sees them, unbilled, at the API and at delivery."""

from __future__ import annotations

from typing import Any

import httpx
from conftest import Sender

from app.simulator import MPServer
from queue_engine.suppression import Origin, Suppressions


async def send(client: httpx.AsyncClient, sender: Sender, *to: str) -> list[str]:
    body = {"from": "shop@acme.example", "to": list(to), "text": "hello"}
    response = await client.post("/v1/mail/send", json=body, headers=sender.basic)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["email_ids"]
    return ids


async def get(client: httpx.AsyncClient, sender: Sender, email_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/emails/{email_id}", headers=sender.basic)
    item: dict[str, Any] = response.json()
    return item


async def test_no_such_user_joins_the_bounce_list_and_blocks_the_next_send(
    client, sender, make_sender, mp: MPServer, start_engine, wait_for
):
    await start_engine(mp)
    [first] = await send(client, sender, "unknown5@gmail.example")

    async def failed() -> dict[str, Any] | None:
        item = await get(client, sender, first)
        return item if item["status"] == "invalid" else None

    item = await wait_for(failed)
    assert item["reason"] == "address_not_exist" and item["billable"]
    check = await client.get(
        "/v1/suppressions/check", params={"address": "Unknown5@GMAIL.example"}, headers=sender.basic
    )
    body = check.json()
    assert body["blocked"] is True and body["address"] == "unknown5@gmail.example"
    [entry] = body["entries"]
    assert (entry["list"], entry["count"], entry["origin"]) == ("bounces", 1, "mp")
    assert entry["reason"].startswith("550 5.1.1")
    attempts_before = mp.state.rcpt_attempts["unknown5@gmail.example"]

    # The bounce list is global: another account's send is blocked too, never attempted.
    other = await make_sender("globex", "globex-tx")
    for who in (sender, other):
        [blocked] = await send(client, who, "unknown5@gmail.example")
        item = await get(client, who, blocked)
        assert (item["status"], item["reason"], item["billable"]) == (
            "invalid",
            "blacklist",
            False,
        )
        assert item["mp_reply"] == "Blacklist: Bounce (worker:address in bounce list)"
        assert item["attempts"] == 0 and item["sending_ip"] is None
    assert mp.state.rcpt_attempts["unknown5@gmail.example"] == attempts_before

    # An exemption of the account lifts the block for that account only.
    added = await client.post(
        "/v1/suppressions/exemptions",
        json={"items": [{"address": "unknown5@gmail.example"}]},
        headers=sender.basic,
    )
    assert added.status_code == 200, added.text
    [exempt] = await send(client, sender, "unknown5@gmail.example")
    item = await wait_for(lambda: _final(client, sender, exempt))
    assert item["reason"] == "address_not_exist"  # attempted again: the MP said no again
    [still] = await send(client, other, "unknown5@gmail.example")
    assert (await get(client, other, still))["reason"] == "blacklist"

    async def counted_twice() -> bool:
        check = await client.get(
            "/v1/suppressions/check",
            params={"address": "unknown5@gmail.example"},
            headers=other.basic,
        )
        return any(e["count"] == 2 for e in check.json()["entries"])

    await wait_for(counted_twice)


async def _final(client: httpx.AsyncClient, sender: Sender, email_id: str) -> dict | None:
    item = await get(client, sender, email_id)
    return item if item["status"] != "requesting" else None


async def test_account_lists_block_with_their_reasons_and_are_not_billed(
    client, sender, mp: MPServer, start_engine, wait_for, redis
):
    await start_engine(mp)
    await client.post(
        "/v1/suppressions/blocks",
        json={"items": [{"domain": "blocked.example"}, {"address": "vip@gmail.example"}]},
        headers=sender.bearer,
    )
    await Suppressions(redis).complain(
        sender.account, sender.api_user, "angry@gmail.example", "abuse", Origin.ARF
    )
    unsub = await client.post(
        "/v1/suppressions/unsubscribes",
        json={"items": [{"address": "gone@gmail.example", "reason": "imported"}]},
        headers=sender.basic,
    )
    assert unsub.status_code == 200
    ids = await send(
        client,
        sender,
        "a@blocked.example",
        "vip@gmail.example",
        "angry@gmail.example",
        "gone@gmail.example",
        "fine@gmail.example",
    )
    items = [await get(client, sender, i) for i in ids[:4]]
    assert [(i["status"], i["reason"], i["mp_reply"], i["billable"]) for i in items] == [
        ("invalid", "blacklist", "Blacklist: Custom Block (worker:address in block list)", False),
        ("invalid", "blacklist", "Blacklist: Custom Block (worker:address in block list)", False),
        (
            "invalid",
            "blacklist",
            "Blacklist: Spam Report (worker:address in complaint list)",
            False,
        ),
        (
            "invalid",
            "unsubscribed",
            "Unsubscribed (worker:address in unsubscribe list)",
            False,
        ),
    ]
    await wait_for(lambda: _final(client, sender, ids[4]))
    assert [r.rcpt_to for r in mp.state.received] == ["fine@gmail.example"]
    # The filters of the email status list find them by sub-reason.
    listed = await client.get(
        "/v1/emails", params={"status": "invalid", "reason": "blacklist"}, headers=sender.basic
    )
    assert len(listed.json()["items"]) == 3


async def test_a_list_change_while_mail_waits_is_honoured_at_delivery(
    client, sender, mp: MPServer, start_engine, wait_for
):
    """Mail queued before the block is checked again just before it is attempted."""
    [waiting] = await send(client, sender, "later@gmail.example")  # no engine yet: it waits
    added = await client.post(
        "/v1/suppressions/blocks",
        json={"items": [{"address": "later@gmail.example", "reason": "asked by phone"}]},
        headers=sender.basic,
    )
    assert added.json()["added"] == 1
    await start_engine(mp)
    item = await wait_for(lambda: _final(client, sender, waiting))
    assert (item["status"], item["reason"], item["billable"]) == ("invalid", "blacklist", False)
    assert item["delivery_log"][-1]["stage"] == "queue"
    assert mp.state.received == []
