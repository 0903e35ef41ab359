"""Delivery through a real MX lookup: a local DNS server names the MP's host."""

from __future__ import annotations

from typing import Any

from queue_engine.routing import Router


async def _final(client: Any, auth: dict[str, str], email_id: str, wait_for: Any) -> Any:
    async def done() -> Any:
        item = (await client.get(f"/v1/emails/{email_id}", headers=auth)).json()
        return item if item["status"] != "requesting" else None

    return await wait_for(done)


def _router(dns_server: Any, mp: Any) -> Router:
    return Router({}, dns_server=("127.0.0.1", dns_server.port), smtp_port=mp.port, dns_timeout=1.0)


async def test_mail_goes_to_the_preferred_mx(
    client, sender, mp, dns_server, start_engine, wait_for
):
    # The preferred MX answers; the backup points at an address nothing listens on.
    dns_server.add("shop.example", "MX", "10 mx1.shop.example.", "20 mx2.shop.example.")
    dns_server.add("mx1.shop.example", "A", "127.0.0.1")
    dns_server.add("mx2.shop.example", "A", "127.0.0.2")
    await start_engine(router=_router(dns_server, mp))
    body = {"from": "a@acme.example", "to": ["user@shop.example"], "subject": "s", "text": "t"}
    [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
        "email_ids"
    ]
    item = await _final(client, sender.basic, email_id, wait_for)
    assert item["status"] == "delivered"
    assert item["delivery_log"][0]["mx"] == f"mx1.shop.example:{mp.port}"
    assert ("shop.example", "MX") in dns_server.queries


async def test_null_mx_fails_without_attempt(
    client, sender, mp, dns_server, start_engine, wait_for
):
    dns_server.add("nomail.example", "MX", "0 .")
    await start_engine(router=_router(dns_server, mp))
    body = {"from": "a@acme.example", "to": ["user@nomail.example"], "subject": "s", "text": "t"}
    [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
        "email_ids"
    ]
    item = await _final(client, sender.basic, email_id, wait_for)
    assert item["status"] == "invalid" and item["reason"] == "server_unreachable"
    assert "null MX" in item["mp_reply"]
    assert item["billable"] is False
    assert mp.state.rcpt_attempts == {}


async def test_temporary_dns_failure_is_retried(
    client, sender, mp, dns_server, start_engine, wait_for
):
    dns_server.servfail.add("flaky.example")
    dns_server.add("flaky.example", "A", "127.0.0.1")
    await start_engine(router=_router(dns_server, mp))
    body = {"from": "a@acme.example", "to": ["user@flaky.example"], "subject": "s", "text": "t"}
    [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
        "email_ids"
    ]

    async def retried() -> Any:
        item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
        return item if item["attempts"] >= 1 else None

    item = await wait_for(retried)
    assert item["status"] == "requesting"
    assert item["delivery_log"][0]["stage"] == "dns"
    dns_server.servfail.clear()
    item = await _final(client, sender.basic, email_id, wait_for)
    assert item["status"] == "delivered"
