"""Broken MPs (issue 10, point 3): each fault of the simulator, reached through the
send API and an engine with a one-second SMTP timeout, ends in a retry and then
the right failure; no worker waits longer than its timeout; a tarpit slows no
other domain, nor do more stalled MPs than the engine drains queues at once;
STARTTLS is used when offered and a broken one falls back to plain text.
RELIABILITY.md ("MP faults") tabulates what these tests prove.
"""

from __future__ import annotations

import itertools
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
from api_calls import email_record
from scrapes import send

from app.simulator import MPServer, Profile, ProfileError, load_profiles
from queue_engine.routing import Destination

TIMEOUT = 1.0
"""smtp_timeout_seconds of these engines: how long one SMTP step may take."""
MAX_AGE = 3.0
"""max_age_seconds: long enough for two or three attempts, then the email fails."""
RETRY_MAX = 1.0  # conftest's TEST_CONFIG
TLS_PEM = Path(__file__).with_name("simulator_tls.pem")
"""A self-signed certificate and its key, for the simulator's STARTTLS in tests only."""

Serve = Callable[..., Awaitable[MPServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start simulated MPs (any MPServer arguments); all stopped at teardown."""
    servers: list[MPServer] = []

    async def start(**kwargs: Any) -> MPServer:
        server = await MPServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def route(server: MPServer) -> Destination:
    return Destination("127.0.0.1", server.port, f"{server.name}.mx.test")


async def settled(
    client: httpx.AsyncClient, sender: Any, ids: list[str], wait_for: Any
) -> list[Any]:
    """The API records of `ids` once none is `requesting` any more."""

    async def all_final() -> list[Any] | None:
        items = [await email_record(client, sender, email_id) for email_id in ids]
        return items if all(i["status"] != "requesting" for i in items) else None

    items: list[Any] = await wait_for(all_final, within=20)
    return items


def seconds(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def retried_then_failed(item: Any, stage: str, reply: str, reason: str = "other") -> list[Any]:
    """Assert the email failed `invalid/<reason>` after two or more temporary attempts,
    each at `stage` with a reply starting `reply` and no SMTP code; those attempts."""
    assert (item["status"], item["reason"]) == ("invalid", reason), item
    attempts = [e for e in item["delivery_log"] if e["stage"] != "queue"]
    # A "queue" entry: the email came due again after its max age and failed unsent.
    assert attempts == item["delivery_log"][: len(attempts)], item
    assert len(attempts) >= 2, item  # retried, not failed at once
    for entry in attempts:
        assert (entry["stage"], entry["outcome"], entry.get("code")) == (stage, "temporary", None)
        assert entry["reply"].startswith(reply), (reply, entry)
    return attempts


# (fault, fault_stage, delivery-log stage, start of the reply, final reason, billable)
FAULTS = [
    ("refuse", None, "connect", "connection failed: ", "server_unreachable", False),
    ("stall", "greeting", "greeting", "timeout at greeting: ", "server_unreachable", False),
    ("stall", "ehlo", "ehlo", "timeout at EHLO: ", "other", True),
    ("stall", "mail", "mail", "timeout at MAIL FROM: ", "other", True),
    ("stall", "rcpt", "rcpt", "timeout at RCPT TO: ", "other", True),
    ("stall", "data", "data", "timeout at DATA: ", "other", True),
    ("stall", "dot", "data", "timeout at end of DATA (the MP may have the message)", "other", True),
    (
        "garbage",
        "greeting",
        "greeting",
        "malformed reply to greeting: ",
        "server_unreachable",
        False,
    ),
    ("garbage", "ehlo", "ehlo", "malformed reply to EHLO: ", "other", True),
    ("garbage", "mail", "mail", "malformed reply to MAIL FROM: ", "other", True),
    ("garbage", "rcpt", "rcpt", "malformed reply to RCPT TO: ", "other", True),
    ("garbage", "data", "data", "malformed reply to DATA: ", "other", True),
    ("garbage", "dot", "data", "malformed reply to end of DATA", "other", True),
    ("tarpit", None, "greeting", "timeout at greeting: ", "server_unreachable", False),
    ("drop_in_data", None, "data", "connection lost at end of DATA", "other", True),
]


async def test_every_fault_is_retried_then_fails_with_its_reason(
    client, sender, serve, start_engine, wait_for
):
    # Every faulty MP at once, one domain each: one engine drains them side by side.
    routes: dict[str, Destination] = {}
    domains = []
    for fault, stage, *_ in FAULTS:
        name = (f"{fault}-{stage}" if stage else fault).replace("_", "-")
        profile = Profile(name=name, fault=fault, fault_stage=stage or "greeting")
        routes[f"{name}.example"] = route(await serve(profile=profile))
        domains.append(f"{name}.example")
    await start_engine(
        routes=routes, smtp_timeout_seconds=TIMEOUT, max_age_seconds=MAX_AGE, lease_seconds=30
    )
    ids = []
    for domain in domains:
        ids += await send(client, sender.basic, [f"someone@{domain}"])
    items = await settled(client, sender, ids, wait_for)
    for (fault, stage, log_stage, reply, reason, billable), item in zip(FAULTS, items, strict=True):
        case = (fault, stage, item)
        log = retried_then_failed(item, log_stage, reply, reason)
        assert item["billable"] is billable and item["send_time"] is None, case
        # No attempt outlasted its timeout: entries are an attempt plus a backoff apart.
        gaps = [seconds(b) - seconds(a) for a, b in itertools.pairwise(log)]
        assert max(gaps) < TIMEOUT + RETRY_MAX + 1.0, case
        if fault == "garbage":
            # What a broken MP said is kept, made printable: the console and exports show it.
            assert "garbled\\x7f reply" in log[0]["reply"] and log[0]["reply"].isprintable()


async def test_a_reply_code_that_is_not_smtp_is_no_refusal(
    client, sender, serve, start_engine, wait_for
):
    # "999 ... user unknown" would read as a 5xx "does not exist" and put the address
    # on the global bounce list; it is a broken MP, and the email is retried.
    broken = Profile(name="broken", unknown_reply="999 5.1.1 user unknown")
    server = await serve(name="broken", profile=broken)
    await start_engine(server, smtp_timeout_seconds=TIMEOUT, max_age_seconds=1)
    ids = await send(client, sender.basic, ["unknown1@gmail.example"])
    [item] = await settled(client, sender, ids, wait_for)
    retried_then_failed(item, "rcpt", "unexpected reply to RCPT TO: 999 5.1.1 user unknown")
    check = await client.get(
        "/v1/suppressions/check", params={"address": "unknown1@gmail.example"}, headers=sender.basic
    )
    assert check.json()["blocked"] is False


async def test_a_tarpit_mp_slows_no_other_domain(client, sender, mp, serve, start_engine, wait_for):
    tarpit = await serve(name="tarpit", profile=Profile(name="tarpit", fault="tarpit"))
    # A long step timeout: the tarpit holds every connection it gets for 30 s.
    await start_engine(
        routes={"tarpit.example": route(tarpit), "*": route(mp)}, smtp_timeout_seconds=30
    )

    async def deliver_healthy(n: int) -> float:
        """Seconds until the healthy MP has accepted n more emails (then recorded delivered)."""
        started, before = time.monotonic(), mp.state.accepted
        await send(client, sender.basic, [f"user{before + i}@gmail.example" for i in range(n)])

        async def accepted() -> bool:
            return mp.state.accepted == before + n

        async def recorded() -> bool:
            query = {"status": "delivered", "limit": 1000}
            response = await client.get("/v1/emails", params=query, headers=sender.basic)
            return len(response.json()["items"]) == before + n

        await wait_for(accepted)
        took = time.monotonic() - started
        await wait_for(recorded)
        return took

    alone = await deliver_healthy(300)
    slow = await send(client, sender.basic, [f"user{i}@tarpit.example" for i in range(20)])

    async def tarpit_holds_every_connection() -> bool:
        return sum(tarpit.state.connections.values()) == 4  # TEST_POLICY's max_connections

    await wait_for(tarpit_holds_every_connection)
    beside = await deliver_healthy(300)
    # All of it went out while the tarpit's first connections were still dribbling
    # their greetings: the same engine, the same API_USER, and no wait on the tarpit.
    assert await tarpit_holds_every_connection()
    assert tarpit.state.events["tarpit"] == 4 and mp.state.accepted == 600
    for email_id in slow:
        item = await email_record(client, sender, email_id)
        assert item["status"] == "requesting" and item["delivery_log"] == [], item
    assert beside < 3 * alone + 1.0, (alone, beside)
    print(f"\n300 emails to a healthy MP: {alone:.2f}s alone, {beside:.2f}s beside a tarpit")


STALL_TIMEOUT = 8.0
"""smtp_timeout_seconds of the next test: a stalled MP's first attempts end after this
long; their queues count as waiting on a slow MP after half of it (engine.py)."""


async def test_more_stalled_mps_than_the_cap_leave_healthy_mail_its_slot(
    client, sender, mp, serve, start_engine, wait_for
):
    stalled = []
    for i in range(3):  # MPs that accept connections and never greet
        profile = Profile(name=f"stall{i}", fault="stall", fault_stage="greeting")
        stalled.append(await serve(name=profile.name, profile=profile))
    routes = {f"{s.name}.example": route(s) for s in stalled} | {"*": route(mp)}
    await start_engine(
        routes=routes, smtp_timeout_seconds=STALL_TIMEOUT, max_active_queues=2, max_slow_queues=2
    )
    waiting = []
    for server in stalled:
        to = [f"u{i}@{server.name}.example" for i in range(4)]
        waiting += await send(client, sender.basic, to)

    async def cap_taken() -> bool:
        # The first two stalled queues hold the cap's two slots, their lanes all waiting.
        return [sum(s.state.connections.values()) for s in stalled] == [4, 4, 0]

    await wait_for(cap_taken)
    started = time.monotonic()
    healthy = await send(client, sender.basic, [f"u{i}@gmail.example" for i in range(20)])

    async def delivered() -> bool:
        items = [await email_record(client, sender, email_id) for email_id in healthy]
        return all(item["status"] == "delivered" for item in items)

    await wait_for(delivered, within=STALL_TIMEOUT)
    took = time.monotonic() - started
    # Out before any stalled attempt ended: their queues gave up the cap's slots while
    # still waiting, not when their attempts timed out.
    for email_id in waiting:
        item = await email_record(client, sender, email_id)
        assert item["status"] == "requesting" and item["delivery_log"] == [], item
    assert mp.state.accepted == len(healthy)
    assert took < STALL_TIMEOUT, took
    print(f"\n20 emails beside 3 stalled MPs, a cap of 2 queues: delivered in {took:.2f}s")


def tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS_PEM)
    return context


async def test_starttls_is_used_when_the_mp_offers_it(
    client, sender, serve, start_engine, wait_for
):
    server = await serve(name="tls", tls_context=tls_context())
    await start_engine(server)
    ids = await send(client, sender.basic, ["ann@gmail.example", "bob@gmail.example"])
    items = await settled(client, sender, ids, wait_for)
    assert [(i["status"], len(i["delivery_log"])) for i in items] == [("delivered", 1)] * 2
    assert sorted((r.rcpt_to, r.tls, r.helo) for r in server.state.received) == [
        ("ann@gmail.example", True, "mailpulse.test"),
        ("bob@gmail.example", True, "mailpulse.test"),
    ]


async def test_a_broken_starttls_is_deferred_then_sent_in_plain_text(
    client, sender, serve, start_engine, wait_for
):
    server = await serve(name="bad-tls", profile=Profile(name="bad-tls", fault="bad_tls"))
    await start_engine(server, smtp_timeout_seconds=TIMEOUT)
    [first] = await send(client, sender.basic, ["ann@gmail.example"])
    [item] = await settled(client, sender, [first], wait_for)
    assert item["status"] == "delivered"
    failed, delivered = item["delivery_log"]
    assert (failed["stage"], failed["outcome"], failed.get("code")) == (
        "starttls",
        "temporary",
        None,
    )
    assert failed["reply"].startswith("TLS handshake failed: ")
    assert failed["reply"].endswith("this MX is next tried without TLS")
    assert (delivered["outcome"], delivered["code"]) == ("delivered", 250)
    # Once failed, that MX gets plain text at once, without another handshake.
    [second] = await send(client, sender.basic, ["bob@gmail.example"])
    [item] = await settled(client, sender, [second], wait_for)
    assert item["status"] == "delivered" and len(item["delivery_log"]) == 1
    assert server.state.events["bad_tls"] == 1
    assert [(r.rcpt_to, r.tls) for r in server.state.received] == [
        ("ann@gmail.example", False),
        ("bob@gmail.example", False),
    ]


async def test_an_attempt_is_cut_when_its_lease_ends(client, sender, serve, start_engine, wait_for):
    # The MP answers each step within the 2 s step timeout, but its answer to the
    # message (1.5 s) comes after the 1 s lease has ended: waiting on could overlap
    # another engine that claimed the email meanwhile, so the attempt ends there.
    slow = await serve(name="slow", profile=Profile(name="slow", data_delay=1.5))
    await start_engine(slow, smtp_timeout_seconds=2, lease_seconds=1, max_age_seconds=3)
    ids = await send(client, sender.basic, ["ann@gmail.example"])
    [item] = await settled(client, sender, ids, wait_for)
    retried_then_failed(
        item,
        "data",
        "timeout at end of DATA (the MP may have the message): the attempt ran out of its lease",
    )
    assert slow.state.accepted == 0  # each copy was cut before the MP took it


def test_faults_in_a_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(
        '[profiles.slowpoke]\ndomains = ["slow.example"]\nfault = "stall"\nfault_stage = "rcpt"\n'
        '[profiles.pit]\ndomains = ["pit.example"]\nfault = "tarpit"\ndata_delay = 0.5\n'
    )
    slowpoke, pit = load_profiles(path)
    assert (slowpoke.fault, slowpoke.fault_stage) == ("stall", "rcpt")
    assert (pit.fault, pit.data_delay) == ("tarpit", 0.5)
    for bad, message in [
        ('fault = "melt"', "key 'fault': must be one of refuse, stall, garbage"),
        ('fault = "stall"\nfault_stage = "quit"', "key 'fault_stage': must be one of greeting"),
        ('fault = "tarpit"\nfault_stage = "rcpt"', "key 'fault_stage': only for fault 'stall'"),
    ]:
        path.write_text(f'[profiles.x]\ndomains = ["x.example"]\n{bad}\n')
        with pytest.raises(ProfileError, match=message):
            load_profiles(path)


async def test_a_slow_content_scan_accepts_only_what_it_finished(serve, wait_for) -> None:
    server = await serve(name="scan", profile=Profile(name="scan", data_delay=0.5))
    message = b"Subject: s\r\n\r\nbody\r\n"
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=0.1)
    await smtp.connect()
    with pytest.raises(aiosmtplib.SMTPTimeoutError):  # the sender leaves during the scan
        await smtp.sendmail("a@sender.test", ["ann@x.example"], message)

    async def gone() -> bool:
        return not server.state.connections

    await wait_for(gone)
    assert server.state.accepted == 0
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
    await smtp.connect()
    errors, _ = await smtp.sendmail("a@sender.test", ["bob@x.example"], message)
    assert errors == {}
    assert [r.rcpt_to for r in server.state.received] == ["bob@x.example"]
