"""What simulated MPs send back later: DSN bounces (RFC 3464) and ARF spam reports (RFC 5965).

Real MPs accept a message and bounce or report it minutes later, to the
envelope sender (our VERP return path). The simulator does the same, seconds
later, over SMTP to mailpulse's inbound server, so the whole asynchronous path
runs on real parts in the demo and in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

import aiosmtplib

log = logging.getLogger(__name__)


def _headers_of(original: bytes) -> str:
    head, _, _ = original.partition(b"\r\n\r\n")
    return head.decode("utf-8", "replace")


def _report(
    sender: str, to: str, subject: str, report_type: str, human: str, machine: str, original: bytes
) -> bytes:
    """A multipart/report as RFC 6522 lays it out: text, machine part, returned headers."""
    boundary = f"=_mp_{uuid.uuid4().hex}"
    domain = sender.rpartition("@")[2].rstrip(">")
    machine_type = (
        "message/delivery-status"
        if report_type == "delivery-status"
        else ("message/feedback-report")
    )
    text = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {make_msgid(domain=domain)}\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{human}\r\n"
        f"--{boundary}\r\nContent-Type: {machine_type}\r\n\r\n{machine}\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{_headers_of(original)}\r\n\r\n--{boundary}--\r\n"
    )
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def build_dsn(
    reporting_mta: str,
    to: str,
    recipient: str,
    original: bytes,
    status: str = "5.1.1",
    diagnostic: str = "550 5.1.1 The email account that you tried to reach does not exist",
) -> bytes:
    human = (
        f"This is the mail system at host {reporting_mta}.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n"
        f"<{recipient}>: host {reporting_mta} said: {diagnostic}\n"
    )
    machine = (
        f"Reporting-MTA: dns; {reporting_mta}\n"
        f"Arrival-Date: {format_datetime(datetime.now(UTC))}\n\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        f"Original-Recipient: rfc822; {recipient}\n"
        "Action: failed\n"
        f"Status: {status}\n"
        f"Remote-MTA: dns; {reporting_mta}\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n"
    )
    sender = f"MAILER-DAEMON@{reporting_mta}"
    subject = "Undelivered Mail Returned to Sender"
    return _report(sender, to, subject, "delivery-status", human, machine, original)


def build_arf(reporting_mp: str, to: str, recipient: str, source_ip: str, original: bytes) -> bytes:
    human = "This is an email abuse report for an email message received from you.\n"
    machine = (
        "Feedback-Type: abuse\n"
        f"User-Agent: {reporting_mp}-fbl/1.0\n"
        "Version: 1\n"
        f"Original-Rcpt-To: {recipient}\n"
        f"Arrival-Date: {format_datetime(datetime.now(UTC))}\n"
        f"Source-IP: {source_ip}\n"
    )
    return _report(
        f"fbl@{reporting_mp}", to, "Abuse report", "feedback-report", human, machine, original
    )


class Reporter:
    """Sends DSNs and ARF reports to the inbound server some seconds after acceptance."""

    def __init__(self, inbound: tuple[str, int], delay: float = 3.0) -> None:
        self.inbound = inbound
        self.delay = delay
        self.sent = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def later(self, to: str, message: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._send(to, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, to: str, message: bytes) -> None:
        await asyncio.sleep(self.delay)  # an MP reports minutes later; seconds here
        host, port = self.inbound
        try:
            async with aiosmtplib.SMTP(hostname=host, port=port, timeout=30) as smtp:
                # Reports go out with the null reverse-path (RFC 5321 4.5.5), which
                # aiosmtplib's sendmail() does not take: MAIL is sent by hand.
                reply = await smtp.execute_command(b"MAIL", b"FROM:<>")
                if reply.code != 250:
                    raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, "")
                await smtp.rcpt(to)
                await smtp.data(message)
            self.sent += 1
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("simulator: report to %s not delivered: %s", to, exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
