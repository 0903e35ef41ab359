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
