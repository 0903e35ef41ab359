"""Pauses (SPEC Q3-Q5): from an MP's throttling reply, by hand; resume by itself or at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from queue_engine import keys
from queue_engine.policy import Policy
from queue_engine.queues import QueueStore
from queue_engine.routing import Destination, Router
from queue_engine.statuses import PauseReason

GMAIL_THROTTLE = (
    "421 4.7.28 Our system has detected an unusually high rate of unsolicited mail "
    "originating from your IP address. To protect our users from spam, mail sent from "
    "your IP address has been temporarily rate limited."
)


class ThrottlingMP:
    """Answers every RCPT with Gmail's 4.7.28 while `throttling`; accepts otherwise."""

    def __init__(self) -> None:
        self.reply = GMAIL_THROTTLE
        self.throttling = True
        self.rcpts: list[str] = []
        self.accepted: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.rcpts.append(address)
        if self.throttling:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.accepted += envelope.rcpt_tos
        return "250 2.0.0 OK"


@pytest.fixture
async def throttling_mp():
    handler = ThrottlingMP()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler), host="127.0.0.1", port=0
    )
    handler.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    yield handler
    server.close()


async def _send(client, sender, n: int, domain: str = "gmail.example") -> list[str]:
    body = {"from": "a@acme.example", "to": [f"u{i}@{domain}" for i in range(n)], "text": "t"}
    response = await client.post("/v1/mail/send", json=body, headers=sender.basic)
    assert response.status_code == 202
    return response.json()["email_ids"]


async def _queue(client, auth, domain: str = "gmail.example") -> dict[str, Any] | None:
    response = await client.get("/v1/queues", params={"include_idle": "1"}, headers=auth)
    assert response.status_code == 200, response.text
    found = [q for q in response.json()["queues"] if q["domain"] == domain]
    return found[0] if found else None


def _pausing(policy: Policy, seconds: float) -> Policy:
    return replace(policy, default=replace(policy.default, throttle_pause_seconds=seconds))


def _router(mp: ThrottlingMP) -> Router:
    return Router({"*": Destination("127.0.0.1", mp.port, "mx.gmail.example")})  # type: ignore[attr-defined]


async def test_throttle_reply_pauses_and_resume_sends_at_once(
    client, sender, throttling_mp, start_engine, wait_for, test_policy
):
    await start_engine(router=_router(throttling_mp), policy=_pausing(test_policy, 3600))
    await _send(client, sender, 20)

    async def paused() -> Any:
        queue = await _queue(client, sender.basic)
        return queue if queue and queue["status"] == "paused" else None

    queue = await wait_for(paused)
    pause = queue["pause"]
    assert pause["reason"] == "ip_quota"
    assert pause["mp_reply"].startswith("421 4.7.28")
    assert pause["since"] < pause["next_outbound_at"]
    assert pause["stale"] is False
    assert queue["pending"] == 20
    # The batch stopped at the first throttle instead of hammering the MP.
    assert len(throttling_mp.rcpts) <= 4  # at most one per parallel lane
    throttling_mp.throttling = False
    started = time.monotonic()
    response = await client.post(
        f"/v1/queues/{sender.api_user}/gmail.example/resume", headers=sender.basic
    )
    assert response.status_code == 200 and response.json()["resumed"] is True

    async def all_delivered() -> bool:
        return len(throttling_mp.accepted) == 20

    await wait_for(all_delivered)
    assert time.monotonic() - started < 1.5  # woken by the resume, not by a poll

    async def recorded() -> Any:
        # The MP's 250 comes first; the engine records the outcome a round trip later.
        queue = await _queue(client, sender.basic)
        return queue if queue["pending"] == 0 else None

    queue = await wait_for(recorded)
    assert queue["status"] == "active" and queue["pause"] is None


async def test_pause_ends_by_itself_at_its_next_outbound_time(
    client, sender, throttling_mp, start_engine, wait_for, test_policy
):
    await start_engine(router=_router(throttling_mp), policy=_pausing(test_policy, 1.0))
    [email_id] = await _send(client, sender, 1)

    async def paused() -> Any:
        queue = await _queue(client, sender.basic)
        return queue if queue and queue["status"] == "paused" else None

    await wait_for(paused)
    throttling_mp.throttling = False

    async def delivered() -> bool:
        item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
        return item["status"] == "delivered"

    await wait_for(delivered, within=5)
    item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
    assert [e["code"] for e in item["delivery_log"]] == [421, 250]


async def test_manual_pause_holds_mail_until_resumed(client, sender, mp, start_engine, wait_for):
    await start_engine(mp)
    await _send(client, sender, 1)
    await wait_for(lambda: _delivered_count(mp, 1))
    url = f"/v1/queues/{sender.api_user}/gmail.example"
    response = await client.post(f"{url}/pause", json={"seconds": 600}, headers=sender.basic)
    assert response.status_code == 200, response.text
    assert response.json()["queue"]["pause"]["reason"] == "manual"
    await _send(client, sender, 3)
    queue = await _queue(client, sender.basic)
    assert queue["status"] == "paused" and queue["pending"] == 3
    assert mp.state.accepted == 1
    assert (await client.post(f"{url}/resume", headers=sender.basic)).json()["resumed"] is True
    await wait_for(lambda: _delivered_count(mp, 4))


async def _delivered_count(mp: Any, n: int) -> bool:
    return bool(mp.state.accepted >= n)


async def test_pause_over_two_days_is_flagged(client, sender, redis):
    await _send(client, sender, 1)
    now = int(time.time() * 1000)
    tag = keys.queue_tag(sender.api_user, "gmail.example")
    await QueueStore(redis).pause(
        tag, PauseReason.DOMAIN_QUOTA, now - 3 * 86_400_000, now + 3_600_000, "452 quota"
    )
    queue = await _queue(client, sender.basic)
    assert queue["pause"]["stale"] is True
    assert queue["pause"]["reason"] == "domain_quota"


async def test_a_shorter_pause_never_cuts_a_longer_one(redis):
    store = QueueStore(redis)
    tag = keys.queue_tag("x", "gmail.example")
    assert await store.pause(tag, PauseReason.IP_QUOTA, 1000, 9000, "a") == 9000
    assert await store.pause(tag, PauseReason.MANUAL, 2000, 5000, "b") == 9000
    pause = await store.get_pause(tag)
    assert pause is not None and (pause.reason, pause.since_ms) == (PauseReason.IP_QUOTA, 1000)


async def test_queue_control_is_scoped_to_the_caller(client, sender, make_sender):
    await _send(client, sender, 1)
    other = await make_sender(account="other", api_user="other-tx")
    sibling = await make_sender(api_user="acme-news", email_type="marketing")
    url = f"/v1/queues/{sender.api_user}/gmail.example/resume"
    assert (await client.post(url, headers=other.basic)).status_code == 404
    assert (await client.post(url, headers=other.bearer)).status_code == 404
    assert (await client.post(url, headers=sibling.basic)).status_code == 404
    assert (await client.post(url, headers=sender.bearer)).status_code == 200
    assert (await client.post(url, headers={})).status_code == 401
    assert await _queue(client, other.bearer) is None
    assert await _queue(client, sender.bearer) is not None
    bad = await client.get("/v1/queues", params={"window": "7"}, headers=sender.basic)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "window"


async def test_rates_count_every_event_of_the_last_seconds(
    client, sender, mp, start_engine, wait_for
):
    await start_engine(mp)
    await _send(client, sender, 30)
    await wait_for(lambda: _delivered_count(mp, 30))
    second = int(time.time())

    async def past_second() -> bool:
        return int(time.time()) > second

    await wait_for(past_second, within=2)
    response = await client.get("/v1/queues", params={"window": "30"}, headers=sender.basic)
    [queue] = response.json()["queues"]
    rates = queue["rates"]
    assert rates["inbound"] * 30 == pytest.approx(30)
    assert rates["attempted"] * 30 == pytest.approx(30)
    assert rates["outbound"] * 30 == pytest.approx(30)


async def test_a_throttle_worded_as_5xx_pauses_instead_of_failing(
    client, sender, throttling_mp, start_engine, wait_for, test_policy
):
    throttling_mp.reply = "550 Ip frequency limited. http://service.mail.qq.com/cgi-bin/help"
    await start_engine(router=_router(throttling_mp), policy=_pausing(test_policy, 3600))
    [email_id] = await _send(client, sender, 1, "qq.example")

    async def paused() -> Any:
        queue = await _queue(client, sender.basic, "qq.example")
        return queue if queue and queue["status"] == "paused" else None

    queue = await wait_for(paused)
    assert queue["pause"]["reason"] == "ip_quota"
    item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
    assert item["status"] == "requesting" and item["attempts"] == 1
