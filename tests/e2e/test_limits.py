"""The delivery policy's limits, reached from their causes, pausing with their reasons."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from queue_engine.limits import DAY_MS, HOUR_MS
from queue_engine.policy import DomainPolicy, Policy
from queue_engine.records import iso


async def _send(client, sender, n: int, domain: str = "gmail.example") -> list[str]:
    body = {"from": "a@acme.example", "to": [f"u{i}@{domain}" for i in range(n)], "text": "t"}
    response = await client.post("/v1/mail/send", json=body, headers=sender.basic)
    assert response.status_code == 202, response.text
    return response.json()["email_ids"]


async def _paused_queue(client, auth) -> Any:
    response = await client.get("/v1/queues", headers=auth)
    queues = [q for q in response.json()["queues"] if q["status"] == "paused"]
    return queues[0] if queues else None


async def _emails(client, auth, status: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/emails", params={"status": status, "limit": 1000}, headers=auth
    )
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _policy(base: Policy, **domain: Any) -> Policy:
    return replace(base, default=replace(base.default, **domain))


async def test_domain_quota_pauses_until_the_window_ends(
    client, sender, mp, start_engine, wait_for, test_policy
):
    gmail = DomainPolicy(quota_per_hour=5, max_connections=2, new_connections_per_minute=1000)
    policy = replace(
        test_policy,
        domains={"gmail.example": gmail, "googlemail.example": gmail},
        providers={"gmail.example": "gmail.example", "googlemail.example": "gmail.example"},
    )
    await start_engine(mp, policy=policy)
    await _send(client, sender, 4, "gmail.example")
    await _send(client, sender, 4, "googlemail.example")  # an alias shares the quota
    queue = await wait_for(lambda: _paused_queue(client, sender.basic))
    assert queue["pause"]["reason"] == "domain_quota"
    since_ms = _ms(queue["pause"]["since"])
    next_hour = iso((since_ms // HOUR_MS + 1) * HOUR_MS)
    assert queue["pause"]["next_outbound_at"] == next_hour
    try:
        await wait_for(lambda: _count(mp, 5), within=3)
    except AssertionError:
        print("ACCEPTED", mp.state.accepted, mp.state.rcpt_attempts)
        for st in ("requesting", "delivered", "invalid"):
            for e in await _emails(client, sender.basic, st):
                print(st, e["recipient"], e["delivery_log"])
        raise
    delivered = await _emails(client, sender.basic, "delivered")
    assert len(delivered) == 5 == mp.state.accepted
    assert len(await _emails(client, sender.basic, "requesting")) == 3


def _ms(iso_time: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp() * 1000)


async def _count(mp: Any, n: int) -> bool:
    return bool(mp.state.accepted >= n)


async def test_ip_quota_uses_every_sending_ip_in_turn_then_pauses(
    client, sender, mp, start_engine, wait_for, test_policy
):
    policy = replace(
        _policy(test_policy, max_connections=1, messages_per_connection=1),
        sources=("127.0.0.2", "127.0.0.3"),
        ip_quota_per_day=3,
    )
    await start_engine(mp, policy=policy)
    await _send(client, sender, 10)
    queue = await wait_for(lambda: _paused_queue(client, sender.basic))
    assert queue["pause"]["reason"] == "ip_quota"
    assert _ms(queue["pause"]["next_outbound_at"]) % DAY_MS == 0  # the next UTC day
    await wait_for(lambda: _count(mp, 6))
    delivered = await _emails(client, sender.basic, "delivered")
    assert sorted(e["sending_ip"] for e in delivered) == ["127.0.0.2"] * 3 + ["127.0.0.3"] * 3
    assert {peer[0] for peer in mp.state.peers} == {"127.0.0.2", "127.0.0.3"}
    assert mp.state.accepted == 6


async def test_connection_rate_pauses_until_the_next_minute(
    client, sender, mp, start_engine, wait_for, test_policy
):
    policy = _policy(
        test_policy, max_connections=1, new_connections_per_minute=1, messages_per_connection=2
    )
    await start_engine(mp, policy=policy)
    await _send(client, sender, 5)
    queue = await wait_for(lambda: _paused_queue(client, sender.basic))
    assert queue["pause"]["reason"] == "ip_connection_rate"
    assert _ms(queue["pause"]["next_outbound_at"]) % 60_000 == 0
    assert mp.state.accepted == 2  # one connection, two messages, then no new connection
    assert len(mp.state.peers) == 1


class CountingSMTP(SMTP):
    open_now = 0
    most = 0

    def connection_made(self, transport: Any) -> None:
        CountingSMTP.open_now += 1
        CountingSMTP.most = max(CountingSMTP.most, CountingSMTP.open_now)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        CountingSMTP.open_now -= 1
        super().connection_lost(exc)


class SlowAccept:
    def __init__(self) -> None:
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.005)  # an MP that takes its time, so connections overlap
        self.accepted += len(envelope.rcpt_tos)
        return "250 OK"


@pytest.mark.parametrize("engines", [1, 3])
async def test_open_connections_stay_within_the_limit_across_engines(
    client, sender, start_engine, wait_for, test_policy, engines
):
    from queue_engine.routing import Destination

    handler = SlowAccept()
    CountingSMTP.open_now = CountingSMTP.most = 0
    server = await asyncio.get_running_loop().create_server(
        lambda: CountingSMTP(handler), host="127.0.0.1", port=0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        policy = _policy(test_policy, max_connections=2, messages_per_connection=10)
        for _ in range(engines):
            await start_engine(routes={"*": Destination("127.0.0.1", port, "mx")}, policy=policy)
        await _send(client, sender, 300)

        async def done() -> bool:
            return handler.accepted >= 300

        await wait_for(done, within=30)
        assert CountingSMTP.most <= 2
        assert handler.accepted == 300
    finally:
        server.close()
