"""The asynchronous path on real parts: MP accepts, later bounces or reports to the
inbound SMTP server, and the report lands in the inbound stream."""

from __future__ import annotations

import asyncio
import base64
from email import message_from_bytes

import aiosmtplib
import pytest

from app.mp_reports import Reporter
from app.simulator import MPServer
from queue_engine import keys
from queue_engine.inbound import serve_inbound

DOMAIN = "bounces.mailpulse.test"


@pytest.fixture
async def inbound(redis):
    server = await serve_inbound(redis, "127.0.0.1", 0, DOMAIN, "inbound.test")
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_mp_bounces_and_reports_reach_the_inbound_stream(redis, inbound, wait_for):
    reporter = Reporter(("127.0.0.1", inbound), delay=0.05)
    mp = await MPServer(reporter=reporter).start()
    try:
        message = b"From: a@acme.example\r\nX-Mailpulse-Id: t.k\r\nSubject: s\r\n\r\nhi\r\n"
        for rcpt in ("bounce1@gmail.example", "complain1@gmail.example", "ok@gmail.example"):
            await aiosmtplib.send(
                message,
                sender=f"bounce+x.{rcpt[:3].strip('@')}@{DOMAIN}",
                recipients=[rcpt],
                hostname="127.0.0.1",
                port=mp.port,
            )

        async def two_reports() -> bool:
            return await redis.xlen(keys.INBOUND_STREAM) == 2

        await wait_for(two_reports)
        entries = await redis.xrange(keys.INBOUND_STREAM)
        kinds = {}
        for _, fields in entries:
            report = message_from_bytes(base64.b64decode(fields["data_b64"]))
            assert report.get_content_type() == "multipart/report"
            kinds[fields["rcpt_to"]] = report.get_param("report-type")
            assert "X-Mailpulse-Id: t.k" in base64.b64decode(fields["data_b64"]).decode()
        assert kinds == {
            f"bounce+x.bou@{DOMAIN}": "delivery-status",
            f"bounce+x.com@{DOMAIN}": "feedback-report",
        }
    finally:
        await mp.stop()
        await reporter.close()


async def test_inbound_refuses_relaying_and_oversized_mail(redis, inbound):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=inbound) as smtp:
        await smtp.mail("")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await smtp.rcpt("someone@elsewhere.example")
        assert refused.value.code == 550 and "5.7.1" in refused.value.message
        await smtp.rset()
        await smtp.mail("")
        await smtp.rcpt(f"bounce+x@{DOMAIN}")
        with pytest.raises(aiosmtplib.SMTPDataError) as too_big:
            await smtp.data(b"Subject: big\r\n\r\n" + (b"x" * 900 + b"\r\n") * 12_000)
        assert too_big.value.code == 552
    await asyncio.sleep(0)
    assert await redis.xlen(keys.INBOUND_STREAM) == 0


async def test_a_later_bounce_makes_a_delivered_email_a_soft_bounce(
    client, sender, redis, inbound, start_engine, wait_for, engine_config
):
    from queue_engine.routing import Destination

    reporter = Reporter(("127.0.0.1", inbound), delay=0.05)
    mp = await MPServer(reporter=reporter).start()
    try:
        await start_engine(
            routes={"*": Destination("127.0.0.1", mp.port, "mx.gmail.example")},
            return_path_domain=DOMAIN,
        )
        body = {"from": "a@acme.example", "to": ["bounce1@gmail.example"], "text": "t"}
        [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
            "email_ids"
        ]

        async def soft_bounced() -> dict | None:
            item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
            return item if item["status"] == "soft_bounce" else None

        item = await wait_for(soft_bounced)
        assert item["reason"] == "address_not_exist"
        assert "5.1.1" in item["mp_reply"]
        assert [e["stage"] for e in item["delivery_log"]] == ["data", "dsn"]
        assert item["send_time"] is not None  # it was delivered first
        listed = await client.get(
            "/v1/emails",
            params={"status": "soft_bounce", "reason": "address_not_exist"},
            headers=sender.basic,
        )
        assert [i["email_id"] for i in listed.json()["items"]] == [email_id]
        delivered = await client.get(
            "/v1/emails", params={"status": "delivered"}, headers=sender.basic
        )
        assert delivered.json()["items"] == []
        # The DSN put the address on the global bounce list (SPEC B1), origin dsn.
        check = await client.get(
            "/v1/suppressions/check",
            params={"address": "bounce1@gmail.example"},
            headers=sender.basic,
        )
        [entry] = check.json()["entries"]
        assert (entry["list"], entry["origin"], entry["count"]) == ("bounces", "dsn", 1)
        assert "5.1.1" in entry["reason"]
    finally:
        await mp.stop()
        await reporter.close()


async def test_a_forged_bounce_changes_nothing(
    client, sender, redis, inbound, mp, start_engine, wait_for, engine_config
):
    from app.mp_reports import build_dsn
    from queue_engine.feedback import FeedbackApplier

    await start_engine(mp, return_path_domain=DOMAIN)
    body = {"from": "a@acme.example", "to": ["victim@gmail.example"], "text": "t"}
    [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
        "email_ids"
    ]

    await wait_for(lambda: _is_delivered(client, sender, email_id))
    forged_to = f"bounce+{email_id}.aaaaaaaaaaaaaaaa@{DOMAIN}"
    original = f"X-Mailpulse-Id: {email_id}.bbbbbbbbbbbbbbbb\r\n\r\n".encode()
    fields = {
        "rcpt_to": forged_to,
        "data_b64": base64.b64encode(
            build_dsn("mx.evil.example", forged_to, "victim@gmail.example", original)
        ).decode(),
    }
    applied = await FeedbackApplier(redis, engine_config.secret).apply(fields)
    assert applied and {a.outcome for a in applied} == {"unmatched"}
    item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
    assert item["status"] == "delivered"


async def test_a_spam_report_is_recorded_on_its_email(
    client, sender, redis, inbound, start_engine, wait_for
):
    from queue_engine.routing import Destination

    reporter = Reporter(("127.0.0.1", inbound), delay=0.05)
    mp = await MPServer(reporter=reporter).start()
    try:
        await start_engine(
            routes={"*": Destination("127.0.0.1", mp.port, "mx.qq.example")},
            return_path_domain=DOMAIN,
        )
        body = {"from": "a@acme.example", "to": ["complain7@qq.example"], "text": "t"}
        [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
            "email_ids"
        ]

        async def complained() -> dict | None:
            item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
            return item if item["complaint"] else None

        item = await wait_for(complained)
        assert item["status"] == "delivered"  # a complaint is not a bounce
        assert item["complaint"]["feedback_type"] == "abuse"
        assert item["complaint"]["source_ip"] == "127.0.0.1"
        # The report put the address on the account's spam-report list for 180 days.
        listed = await client.get("/v1/suppressions/complaints", headers=sender.bearer)
        [entry] = listed.json()["items"]
        assert (entry["address"], entry["api_user"], entry["reason"], entry["origin"]) == (
            "complain7@qq.example",
            sender.api_user,
            "abuse",
            "arf",
        )
    finally:
        await mp.stop()
        await reporter.close()


async def test_a_bounce_with_only_our_message_id_counts_for_its_own_recipient(
    client, sender, redis, mp, start_engine, wait_for, engine_config
):
    """An MTA that drops the return path and our header still quotes the Message-ID."""
    from app.mp_reports import build_dsn
    from queue_engine.feedback import FeedbackApplier

    await start_engine(mp, return_path_domain=DOMAIN)
    body = {"from": "a@acme.example", "to": ["left@gmail.example"], "text": "t"}
    [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
        "email_ids"
    ]

    await wait_for(lambda: _is_delivered(client, sender, email_id))
    original = f"Message-ID: <{email_id}@{DOMAIN}>\r\nSubject: t\r\n\r\n".encode()
    applier = FeedbackApplier(redis, engine_config.secret)

    def dsn(recipient: str) -> dict[str, str]:
        raw = build_dsn("mx.gmail.example", f"postmaster@{DOMAIN}", recipient, original)
        return {"rcpt_to": f"postmaster@{DOMAIN}", "data_b64": base64.b64encode(raw).decode()}

    # Naming another recipient, the Message-ID alone proves nothing.
    applied = await applier.apply(dsn("someone-else@gmail.example"))
    assert {a.outcome for a in applied} == {"unmatched"}
    applied = await applier.apply(dsn("left@gmail.example"))
    assert [a.outcome for a in applied] == ["soft_bounce/address_not_exist"]
    item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
    assert (item["status"], item["reason"]) == ("soft_bounce", "address_not_exist")


async def _is_delivered(client, sender, email_id: str) -> bool:
    item = (await client.get(f"/v1/emails/{email_id}", headers=sender.basic)).json()
    return bool(item["status"] == "delivered")
