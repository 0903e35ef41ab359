# ruff: noqa: E501, RUF001  (the samples are email text: their lines are as long as they are)
"""Writes tests/reports/corpus/*.eml and expected.json: the bounce/ARF/auto-reply corpus.

    .venv/bin/python tests/reports/build_corpus.py

The samples are written by hand after the formats' specifications (RFC 3464,
RFC 5965, RFC 3834) and the layouts real MTAs and providers produce (Postfix's
bounce(5) templates, Exim's deliver.c texts, Sendmail's savemail.c, qmail-send,
Courier's DSN templates, Exchange/Office 365 NDRs, Gmail, Yahoo, Amazon SES,
QQ/Exmail, NetEase, Sina, Japanese carriers, ...); the addresses are fictitious.
This script is their source: encoded samples (base64, quoted-printable,
GB18030, Big5, ISO-2022-JP) are easier to keep right here than by hand. Each
sample's expected findings list only the fields they pin; `test_corpus.py`
checks them all.
"""

from __future__ import annotations

import base64
import json
import quopri
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SIG = "abcdefghijklmnop"
SAMPLES: dict[str, tuple[bytes, list[dict[str, Any]]]] = {}


def email_id(n: int) -> str:
    return f"{0x6650000000000000000000000000 + n:028x}"


def token(n: int) -> str:
    return f"{email_id(n)}.{SIG}"


def rp(n: int) -> str:
    return f"bounce+{token(n)}@rp.shop.example"


def msgid(n: int) -> str:
    return f"<{email_id(n)}@shop.example>"


def original(n: int, rcpt: str, *, body: bool = True, return_path: bool = False) -> str:
    head = (
        "Received: from mta1.shop.example (mta1.shop.example [192.0.2.10])\n"
        "\tby mx.example.org with ESMTPS id 4VfQ2k1Xyz; Tue, 14 May 2024 10:45:00 +0000\n"
        + (f"Return-Path: <{rp(n)}>\n" if return_path else "")
        + "From: Shop News <news@shop.example>\n"
        f"To: {rcpt}\n"
        "Subject: Your order #12345 has shipped\n"
        "Date: Tue, 14 May 2024 10:44:58 +0000\n"
        f"Message-ID: {msgid(n)}\n"
        f"X-Mailpulse-Id: {token(n)}\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 7bit\n"
    )
    if not body:
        return head
    return head + "\nHello,\n\nYour order #12345 has shipped.\n\nThank you for shopping with us.\n"


def multipart(boundary: str, *parts: str, preamble: str = "") -> str:
    out = preamble
    for p in parts:
        out += f"--{boundary}\n{p.rstrip(chr(10))}\n"
    return out + f"--{boundary}--\n"


def part(headers: str, body: str) -> str:
    return headers.strip("\n") + "\n\n" + body


def b64(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\n"


def qp(data: bytes) -> str:
    return quopri.encodestring(data).decode("ascii")


def word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def finding(kind: str = "dsn", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind}
    if kind == "dsn":
        out.setdefault("action", "failed")
    out.update(fields)
    return out


def failed(
    rcpt: str | None, category: str, code: int | None, enhanced: str | None, **kw: Any
) -> dict[str, Any]:
    permanent = kw.pop("permanent", True if code is None else code >= 500)
    return finding(
        recipient=rcpt,
        category=category,
        smtp_code=code,
        enhanced_status=enhanced,
        permanent=permanent,
        **kw,
    )


def delayed(rcpt: str | None, **kw: Any) -> dict[str, Any]:
    return finding(recipient=rcpt, action="delayed", category=None, permanent=False, **kw)


def corr(n: int, *, return_path: bool = True) -> dict[str, Any]:
    """The correlation fields a sample built on `original(n)` and sent to `rp(n)` must give."""
    out: dict[str, Any] = {"original_message_id": msgid(n), "x_mailpulse_id": token(n)}
    if return_path:
        out["return_path"] = rp(n)
    return out


def sample(name: str) -> Callable[[Callable[[], tuple[str | bytes, list[dict[str, Any]]]]], None]:
    def register(fn: Callable[[], tuple[str | bytes, list[dict[str, Any]]]]) -> None:
        raw, expected = fn()
        if isinstance(raw, str):
            data = raw.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
        else:
            data = raw
        SAMPLES[name] = (data, expected)

    return register


DATE = "Date: Tue, 14 May 2024 10:45:03 +0000"


# --- Postfix -------------------------------------------------------------------------------


def postfix_human(host: str, lines: str) -> str:
    return (
        f"This is the mail system at host {host}.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        "For further assistance, please send mail to postmaster.\n\n"
        "If you do so, please include this problem report. You can\n"
        "delete your own text from the attached returned message.\n\n"
        "                   The mail system\n\n" + lines
    )


@sample("postfix_dsn_user_unknown")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 1
    b = "4VfQ2k1Xyz.1715683503/mta1.shop.example"
    body = multipart(
        b,
        part(
            "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii",
            postfix_human(
                "mta1.shop.example",
                "<jane.doe@example.org>: host mx1.example.org[198.51.100.7] said: 550 5.1.1\n"
                "    <jane.doe@example.org>: Recipient address rejected: User unknown in virtual\n"
                "    mailbox table (in reply to RCPT TO command)\n",
            ),
        ),
        part(
            "Content-Description: Delivery report\nContent-Type: message/delivery-status",
            "Reporting-MTA: dns; mta1.shop.example\n"
            "X-Postfix-Queue-ID: 4VfQ2k1Xyz\n"
            f"X-Postfix-Sender: rfc822; {rp(n)}\n"
            "Arrival-Date: Tue, 14 May 2024 10:45:00 +0000 (UTC)\n\n"
            "Final-Recipient: rfc822; jane.doe@example.org\n"
            "Original-Recipient: rfc822;jane.doe@example.org\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            "Remote-MTA: dns; mx1.example.org\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <jane.doe@example.org>: Recipient address\n"
            "    rejected: User unknown in virtual mailbox table\n",
        ),
        part(
            "Content-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers",
            original(n, "jane.doe@example.org", body=False),
        ),
        preamble="This is a MIME-encapsulated message.\n\n",
    )
    raw = (
        f"Return-Path: <>\nDelivered-To: {rp(n)}\n"
        "Received: by mta1.shop.example (Postfix)\n\tid 4VfQ2k1Xyz; Tue, 14 May 2024 10:45:03 +0000\n"
        f"{DATE}\nFrom: MAILER-DAEMON@mta1.shop.example (Mail Delivery System)\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"To: {rp(n)}\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{b}"\n'
        "Content-Transfer-Encoding: 8bit\n"
        "Message-Id: <20240514104503.4VfQ2k1Xyz@mta1.shop.example>\n\n" + body
    )
    return raw, [
        failed(
            "jane.doe@example.org",
            "address_not_exist",
            550,
            "5.1.1",
            arrival_date="Tue, 14 May 2024 10:45:00 +0000 (UTC)",
            **corr(n),
        )
    ]


@sample("postfix_dsn_two_recipients")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 2
    b = "4VfQ3m2Abc.1715683600/mta1.shop.example"
    body = multipart(
        b,
        part(
            "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii",
            postfix_human(
                "mta1.shop.example",
                "<alice@example.net>: host mx.example.net[203.0.113.5] said: 550 5.1.1\n"
                "    <alice@example.net>: Recipient address rejected: User unknown in local\n"
                "    recipient table (in reply to RCPT TO command)\n\n"
                "<bob@example.net>: host mx.example.net[203.0.113.5] said: 552 5.2.2\n"
                "    <bob@example.net>: Mailbox full (in reply to RCPT TO command)\n",
            ),
        ),
        part(
            "Content-Description: Delivery report\nContent-Type: message/delivery-status",
            "Reporting-MTA: dns; mta1.shop.example\n"
            f"X-Postfix-Sender: rfc822; {rp(n)}\n"
            "Arrival-Date: Tue, 14 May 2024 10:45:00 +0000 (UTC)\n\n"
            "Final-Recipient: rfc822; alice@example.net\n"
            "Action: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.example.net\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <alice@example.net>: Recipient address\n"
            "    rejected: User unknown in local recipient table\n\n"
            "Final-Recipient: rfc822; bob@example.net\n"
            "Action: failed\nStatus: 5.2.2\nRemote-MTA: dns; mx.example.net\n"
            "Diagnostic-Code: smtp; 552 5.2.2 <bob@example.net>: Mailbox full\n",
        ),
        part(
            "Content-Description: Undelivered Message\nContent-Type: message/rfc822",
            original(n, "alice@example.net, bob@example.net"),
        ),
    )
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mta1.shop.example (Mail Delivery System)\n"
        f"Subject: Undelivered Mail Returned to Sender\nTo: {rp(n)}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\n\n' + body
    )
    return raw, [
        failed("alice@example.net", "address_not_exist", 550, "5.1.1", **corr(n)),
        failed("bob@example.net", "other", 552, "5.2.2", pause_reason=None, **corr(n)),
    ]


@sample("postfix_dsn_host_not_found")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 3
    b = "4VfQ4n3Def.1715683700/mta1.shop.example"
    body = multipart(
        b,
        part(
            "Content-Type: text/plain; charset=us-ascii",
            postfix_human(
                "mta1.shop.example",
                "<carl@no-such-domain.example>: Host or domain name not found. Name service\n"
                "    error for name=no-such-domain.example type=MX: Host not found, try again\n",
            ),
        ),
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; mta1.shop.example\n\n"
            "Final-Recipient: rfc822; carl@no-such-domain.example\n"
            "Action: failed\nStatus: 5.4.4\n"
            "Diagnostic-Code: X-Postfix; Host or domain name not found. Name service error\n"
            "    for name=no-such-domain.example type=MX: Host not found, try again\n",
        ),
        part(
            "Content-Type: text/rfc822-headers",
            original(n, "carl@no-such-domain.example", body=False),
        ),
    )
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mta1.shop.example (Mail Delivery System)\n"
        f"Subject: Undelivered Mail Returned to Sender\nTo: {rp(n)}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\n\n' + body
    )
    return raw, [
        failed("carl@no-such-domain.example", "server_unreachable", None, "5.4.4", **corr(n))
    ]


@sample("postfix_dsn_delayed")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 4
    b = "4VfQ5p4Ghi.1715698000/mta1.shop.example"
    human = (
        "####################################################################\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        "####################################################################\n\n"
        "This is the mail system at host mta1.shop.example.\n\n"
        "Your message could not be delivered for more than 4 hour(s).\n"
        "It will be retried until it is 5 day(s) old.\n\n"
        "                   The mail system\n\n"
        "<dora@slow.example>: connect to mx.slow.example[198.51.100.20]:25: Connection\n"
        "    timed out\n"
    )
    body = multipart(
        b,
        part(
            "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii", human
        ),
        part(
            "Content-Description: Delivery report\nContent-Type: message/delivery-status",
            "Reporting-MTA: dns; mta1.shop.example\n\n"
            "Final-Recipient: rfc822; dora@slow.example\n"
            "Action: delayed\nStatus: 4.4.1\n"
            "Diagnostic-Code: X-Postfix; connect to mx.slow.example[198.51.100.20]:25:\n"
            "    Connection timed out\n"
            "Will-Retry-Until: Sun, 19 May 2024 10:45:00 +0000 (UTC)\n",
        ),
        part("Content-Type: text/rfc822-headers", original(n, "dora@slow.example", body=False)),
    )
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mta1.shop.example (Mail Delivery System)\n"
        "Subject: Delayed Mail (still being retried)\n"
        f"To: {rp(n)}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\n\n' + body
    )
    return raw, [delayed("dora@slow.example", enhanced_status="4.4.1", **corr(n))]


@sample("postfix_dsn_spamhaus_block")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 5
    b = "4VfQ6q5Jkl.1715683900/mta1.shop.example"
    diag = (
        "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using\n"
        "    zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.10"
    )
    body = multipart(
        b,
        part(
            "Content-Type: text/plain; charset=us-ascii",
            postfix_human(
                "mta1.shop.example",
                f"<erin@corp.example>: host mx.corp.example[203.0.113.9] said: {diag} (in reply\n"
                "    to RCPT TO command)\n",
            ),
        ),
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; mta1.shop.example\n\n"
            "Final-Recipient: rfc822; erin@corp.example\nAction: failed\nStatus: 5.7.1\n"
            f"Remote-MTA: dns; mx.corp.example\nDiagnostic-Code: smtp; {diag}\n",
        ),
        part("Content-Type: text/rfc822-headers", original(n, "erin@corp.example", body=False)),
    )
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mta1.shop.example (Mail Delivery System)\n"
        f"Subject: Undelivered Mail Returned to Sender\nTo: {rp(n)}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\n\n' + body
    )
    return raw, [failed("erin@corp.example", "ip_domain_rejected", 554, "5.7.1", **corr(n))]


@sample("postfix_plain_warning_delay")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 6
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@relay.partner.example (Mail Delivery System)\n"
        f"Subject: Delayed Mail (still being retried)\nTo: {rp(n)}\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "####################################################################\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        "####################################################################\n\n"
        "This is the mail system at host relay.partner.example.\n\n"
        "Your message could not be delivered for more than 4 hour(s).\n"
        "It will be retried until it is 5 day(s) old.\n\n"
        "                   The mail system\n\n"
        "<frank@busy.example>: host mx.busy.example[198.51.100.33] said: 451 4.7.1\n"
        "    Greylisted, please try again in 300 seconds (in reply to RCPT TO command)\n"
    )
    return raw, [delayed("frank@busy.example", smtp_code=451, enhanced_status="4.7.1")]


# --- Exim --------------------------------------------------------------------------------------

EXIM_HEAD = (
    "This message was created automatically by mail delivery software.\n\n"
    "A message that you sent could not be delivered to one or more of its\n"
    "recipients. This is a permanent error. The following address(es) failed:\n\n"
)


@sample("exim_plain_two_recipients")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 7
    raw = (
        f"Return-path: <>\nEnvelope-to: {rp(n)}\n{DATE}\n"
        "From: Mail Delivery System <Mailer-Daemon@smtp.hosting.example>\n"
        f"To: {rp(n)}\nSubject: Mail delivery failed: returning message to sender\n"
        "Message-Id: <E1s6qXa-0004Lh-9c@smtp.hosting.example>\n"
        "X-Failed-Recipients: gina@example.com, hank@example.com\nAuto-Submitted: auto-replied\n\n"
        + EXIM_HEAD
        + "  gina@example.com\n"
        "    SMTP error from remote mail server after RCPT TO:<gina@example.com>:\n"
        "    host mx.example.com [192.0.2.55]: 550 5.1.1 <gina@example.com>... User unknown\n"
        "  hank@example.com\n"
        "    SMTP error from remote mail server after RCPT TO:<hank@example.com>:\n"
        "    host mx.example.com [192.0.2.55]: 550 5.7.1 <hank@example.com>... Relaying denied\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        + original(n, "gina@example.com, hank@example.com", return_path=True)
    )
    return raw, [
        failed("gina@example.com", "address_not_exist", 550, "5.1.1", **corr(n)),
        failed("hank@example.com", "sender_recipient_rejected", 550, "5.7.1", **corr(n)),
    ]


@sample("exim_dsn_mailru_user_not_found")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 8
    b = "1715683503-eximdsn-1804289383"
    human = (
        EXIM_HEAD + "  ivan@mail.example.ru\n"
        "    host mxs.mail.example.ru [217.69.139.150]\n"
        "    SMTP error from remote mail server after RCPT TO:<ivan@mail.example.ru>:\n"
        "    550 Message was not accepted -- invalid mailbox.  Local mailbox\n"
        "    ivan@mail.example.ru is unavailable: user not found\n"
    )
    body = multipart(
        b,
        part("Content-type: text/plain; charset=us-ascii", human),
        part(
            "Content-type: message/delivery-status",
            "Reporting-MTA: dns; smtp.hosting.example\n\n"
            "Action: failed\nFinal-Recipient: rfc822;ivan@mail.example.ru\nStatus: 5.0.0\n"
            "Remote-MTA: dns; mxs.mail.example.ru\n"
            "Diagnostic-Code: smtp; 550 Message was not accepted -- invalid mailbox.  Local\n"
            "  mailbox ivan@mail.example.ru is unavailable: user not found\n",
        ),
        part("Content-type: message/rfc822", original(n, "ivan@mail.example.ru")),
    )
    raw = (
        f"{DATE}\nFrom: Mail Delivery System <Mailer-Daemon@smtp.hosting.example>\n"
        f"To: {rp(n)}\nSubject: Mail delivery failed: returning message to sender\n"
        "X-Failed-Recipients: ivan@mail.example.ru\nAuto-Submitted: auto-replied\n"
        f"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary={b}\n"
        "Message-Id: <E1s6qXb-0004Li-Ab@smtp.hosting.example>\n\n" + body
    )
    return raw, [failed("ivan@mail.example.ru", "address_not_exist", 550, "5.0.0", **corr(n))]


@sample("exim_retry_timeout")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 9
    raw = (
        f"{DATE}\nFrom: Mail Delivery System <Mailer-Daemon@smtp.hosting.example>\n"
        f"To: {rp(n)}\nSubject: Mail delivery failed: returning message to sender\n"
        "X-Failed-Recipients: judy@dead.example\n\n"
        + EXIM_HEAD
        + "  judy@dead.example\n    retry timeout exceeded\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        + original(n, "judy@dead.example")
    )
    return raw, [failed("judy@dead.example", "server_unreachable", None, None, **corr(n))]


@sample("exim_delay_warning")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 10
    raw = (
        f"{DATE}\nFrom: Mail Delivery System <Mailer-Daemon@smtp.hosting.example>\n"
        f"To: {rp(n)}\nSubject: Warning: message 1s6qXa-0004Lh-9c delayed 24 hours\n"
        "Auto-Submitted: auto-replied\n\n"
        "This message was created automatically by mail delivery software.\n"
        "A message that you sent has not yet been delivered to one or more of its\n"
        "recipients after more than 24 hours on the queue on smtp.hosting.example.\n\n"
        "The message identifier is:     1s6qXa-0004Lh-9c\n"
        "The subject of the message is: Your order #12345 has shipped\n\n"
        "The address to which the message has not yet been delivered is:\n\n"
        "  kate@slow.example\n"
        "    Delay reason: SMTP error from remote mail server after RCPT TO:<kate@slow.example>:\n"
        "    host mx.slow.example [198.51.100.21]: 452 4.2.2 Mailbox over quota, try later\n\n"
        "No action is required on your part. Delivery attempts will continue for\n"
        "some time, and this warning may be repeated at intervals if the message\n"
        "remains undelivered. Eventually the mail delivery software will give up,\n"
        "and when that happens, the message will be returned to you.\n"
    )
    return raw, [
        delayed("kate@slow.example", smtp_code=452, enhanced_status="4.2.2", return_path=rp(n))
    ]


# --- Sendmail ---------------------------------------------------------------------------------


@sample("sendmail_dsn_user_unknown")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 11
    b = "u4EAj3Yq012345.1715683503/mail.shop.example"
    human = (
        "The original message was received at Tue, 14 May 2024 10:45:00 GMT\n"
        "from mta1.shop.example [192.0.2.10]\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        "<liam@example.edu>\n"
        "    (reason: 550 5.1.1 <liam@example.edu>... User unknown)\n\n"
        "   ----- Transcript of session follows -----\n"
        "... while talking to mx.example.edu.:\n"
        ">>> DATA\n"
        "<<< 550 5.1.1 <liam@example.edu>... User unknown\n"
        "550 5.1.1 <liam@example.edu>... User unknown\n"
        "<<< 503 5.0.0 Need RCPT (recipient)\n"
    )
    body = multipart(
        b,
        part("Content-Type: text/plain", human),
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; mail.shop.example\n"
            "Received-From-MTA: DNS; mta1.shop.example\n"
            "Arrival-Date: Tue, 14 May 2024 10:45:00 GMT\n\n"
            "Final-Recipient: RFC822; liam@example.edu\nAction: failed\nStatus: 5.1.1\n"
            "Remote-MTA: DNS; mx.example.edu\n"
            "Diagnostic-Code: SMTP; 550 5.1.1 <liam@example.edu>... User unknown\n"
            "Last-Attempt-Date: Tue, 14 May 2024 10:45:03 GMT\n",
        ),
        part("Content-Type: text/rfc822-headers", original(n, "liam@example.edu", body=False)),
        preamble="This is a MIME-encapsulated message\n\n",
    )
    raw = (
        f"{DATE}\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@mail.shop.example>\n"
        f"To: <{rp(n)}>\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{b}"\n'
        "Subject: Returned mail: see transcript for details\nAuto-Submitted: auto-generated (failure)\n\n"
        + body
    )
    return raw, [failed("liam@example.edu", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("sendmail_plain_transcript")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 12
    raw = (
        f"{DATE}\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@old.partner.example>\n"
        f"To: {rp(n)}\nSubject: Returned mail: User unknown\n\n"
        "The original message was received at Tue, 14 May 2024 10:45:00 -0500\n"
        "from mta1.shop.example [192.0.2.10]\n\n"
        "   ----- Transcript of session follows -----\n"
        "... while talking to mail.oldcorp.example.:\n"
        ">>> RCPT To:<mia@oldcorp.example>\n"
        "<<< 550 5.1.1 <mia@oldcorp.example>... User unknown\n"
        "550 5.1.1 mia@oldcorp.example... User unknown\n\n"
        "   ----- Original message follows -----\n\n" + original(n, "mia@oldcorp.example")
    )
    return raw, [failed("mia@oldcorp.example", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("sendmail_warning_4_hours")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 13
    raw = (
        f"{DATE}\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@mail.partner.example>\n"
        f"To: {rp(n)}\nSubject: Warning: could not send message for past 4 hours\n"
        "Auto-Submitted: auto-generated (warning-timeout)\n\n"
        "    **********************************************\n"
        "    **      THIS IS A WARNING MESSAGE ONLY      **\n"
        "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n"
        "    **********************************************\n\n"
        "The original message was received at Tue, 14 May 2024 06:40:00 GMT\n"
        "from mta1.shop.example [192.0.2.10]\n\n"
        "   ----- Transcript of session follows -----\n"
        "<noah@unreachable.example>... Deferred: Connection timed out with mx.unreachable.example.\n"
        "Warning: message still undelivered after 4 hours\n"
        "Will keep trying until message is 5 days old\n"
    )
    return raw, [delayed("noah@unreachable.example", smtp_code=None)]


# --- qmail -----------------------------------------------------------------------------------

QMAIL_HEAD = (
    "Hi. This is the qmail-send program at mail.hosting.example.\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
)


@sample("qmail_remote_user_unknown")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 14
    raw = (
        "Return-Path: <>\nReceived: (qmail 12345 invoked for bounce); 14 May 2024 10:45:03 -0000\n"
        f"{DATE}\nFrom: MAILER-DAEMON@mail.hosting.example\nTo: {rp(n)}\nSubject: failure notice\n\n"
        + QMAIL_HEAD
        + "<olivia@example.info>:\n"
        "203.0.113.40 does not like recipient.\n"
        "Remote host said: 550 5.1.1 <olivia@example.info>: Recipient address rejected: User unknown\n"
        "Giving up on 203.0.113.40.\n\n"
        "--- Below this line is a copy of the message.\n\n"
        + original(n, "olivia@example.info", return_path=True)
    )
    return raw, [failed("olivia@example.info", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("qmail_local_no_mailbox")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 15
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mail.hosting.example\nTo: {rp(n)}\nSubject: failure notice\n\n"
        + QMAIL_HEAD
        + "<paul@hosting.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        "--- Below this line is a copy of the message.\n\n" + original(n, "paul@hosting.example")
    )
    return raw, [failed("paul@hosting.example", "address_not_exist", None, "5.1.1", **corr(n))]


@sample("qmail_two_recipients_quota_and_unknown")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 16
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mail.hosting.example\nTo: {rp(n)}\nSubject: failure notice\n\n"
        + QMAIL_HEAD
        + "<quinn@example.biz>:\n198.51.100.61 failed after I sent the message.\n"
        "Remote host said: 552 5.2.2 Mailbox full: quota exceeded for quinn\n\n"
        "<rose@example.biz>:\n198.51.100.61 does not like recipient.\n"
        "Remote host said: 550 5.1.1 <rose@example.biz>: no such user here\n"
        "Giving up on 198.51.100.61.\n\n"
        "--- Below this line is a copy of the message.\n\n"
        + original(n, "quinn@example.biz, rose@example.biz")
    )
    return raw, [
        failed("quinn@example.biz", "other", 552, "5.2.2", pause_reason=None, **corr(n)),
        failed("rose@example.biz", "address_not_exist", 550, "5.1.1", **corr(n)),
    ]


@sample("qmail_host_not_found")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 17
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mail.hosting.example\nTo: {rp(n)}\nSubject: failure notice\n\n"
        + QMAIL_HEAD
        + "<sam@no-mx.example>:\n"
        "Sorry, I couldn't find any host named no-mx.example. (#5.1.2)\n\n"
        "--- Below this line is a copy of the message.\n\n" + original(n, "sam@no-mx.example")
    )
    # qmail's own 5.1.2 ("bad destination system"): the domain does not resolve.
    return raw, [failed("sam@no-mx.example", "server_unreachable", None, "5.1.2", **corr(n))]


# --- Courier, OpenSMTPD, GMX ----------------------------------------------------------------


@sample("courier_dsn")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 18
    b = "=_courier-12345-1715683503-0001"
    human = (
        "This is a delivery status notification from mail.courier.example,\n"
        "running the Courier mail server, version 1.1.8.\n\n"
        "The original message was received on Tue, 14 May 2024 10:45:00 +0000\n"
        "from mta1.shop.example (mta1.shop.example [192.0.2.10])\n\n"
        "---------------------------------------------------------------------------\n\n"
        "                           UNDELIVERABLE MAIL\n\n"
        "Your message to the following recipients cannot be delivered:\n\n"
        "<tina@courier.example>:\n"
        "    mx.courier.example [203.0.113.77]:\n"
        ">>> RCPT TO:<tina@courier.example>\n"
        "<<< 550 5.1.1 <tina@courier.example>... User unknown\n\n"
        "---------------------------------------------------------------------------\n"
    )
    body = multipart(
        b,
        part(
            "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 7bit", human
        ),
        part(
            "Content-Type: message/delivery-status\nContent-Transfer-Encoding: 7bit",
            "Reporting-MTA: dns; mail.courier.example\nArrival-Date: Tue, 14 May 2024 10:45:00 +0000\n\n"
            "Final-Recipient: rfc822; tina@courier.example\nAction: failed\nStatus: 5.0.0\n"
            "Remote-MTA: dns; mx.courier.example\n",
        ),
        part(
            "Content-Type: text/rfc822-headers; charset=iso-8859-1",
            original(n, "tina@courier.example", body=False),
        ),
    )
    raw = (
        f'From: "Courier mail server at mail.courier.example" <@>\nTo: {rp(n)}\n{DATE}\n'
        "Subject: NOTICE: mail delivery status.\nMime-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n    boundary="{b}"\n'
        "Message-ID: <courier.664339AF.00003039@mail.courier.example>\n\n" + body
    )
    return raw, [failed("tina@courier.example", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("opensmtpd_mailbox_full")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 19
    raw = (
        f"{DATE}\nFrom: Mailer Daemon <MAILER-DAEMON@smtpd.openbsd.example>\nTo: {rp(n)}\n"
        "Subject: Delivery status notification: error\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "    Hi!\n\n"
        "    This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.\n\n"
        "    An error has occurred while attempting to deliver a message for\n"
        "    the following list of recipients:\n\n"
        "uma@openbsd.example: 552 5.2.2 <uma@openbsd.example>... Mailbox Full\n\n"
        "    Below is a copy of the original message:\n\n" + original(n, "uma@openbsd.example")
    )
    return raw, [failed("uma@openbsd.example", "other", 552, "5.2.2", **corr(n))]


@sample("gmx_permanent_error")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 20
    raw = (
        f'{DATE}\nFrom: "Mail Delivery System" <mailer-daemon@gmx.example>\nTo: {rp(n)}\n'
        "Subject: Mail delivery failed: returning message to sender\n"
        "X-GMX-Antispam: 0 (Mail was not recognized as spam); Detail=V3;\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of\n"
        "its recipients. This is a permanent error. The following address\n"
        "failed:\n\n"
        '"victor@web.example":\n'
        "SMTP error from remote server after RCPT command:\n"
        "host: mx.web.example\n"
        "5.1.1 <victor@web.example>... User Unknown\n\n"
        "--- The header of the original message is following. ---\n\n"
        + original(n, "victor@web.example", body=False)
    )
    return raw, [failed("victor@web.example", "address_not_exist", None, "5.1.1", **corr(n))]


# --- Microsoft -----------------------------------------------------------------------------------


@sample("office365_ndr_recipient_not_found")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 21
    b = "_000_a1b2c3d4e5f6_"
    alt = "_001_a1b2c3d4e5f6_"
    text = (
        "Your message to wendy@contoso.example couldn't be delivered.\n"
        "wendy wasn't found at contoso.example.\n"
        "news      Office 365      wendy\n"
        "Action Required                 Recipient\n"
        "Unknown To address\n\n"
        "How to Fix It\nThe address may be misspelled or may not exist. Try one or more of the following:\n\n"
        "Diagnostic information for administrators:\n\n"
        "Generating server: AM0PR01MB1234.eurprd01.prod.exchangelabs.com\n"
        "wendy@contoso.example\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by\n"
        " SMTP address lookup'\n\n"
        "Original message headers:\n\n" + original(n, "wendy@contoso.example", body=False)
    )
    html = (
        '<html><body><p>Your message to <a href="mailto:wendy@contoso.example">'
        "wendy@contoso.example</a> couldn't be delivered.</p>"
        "<p>Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not "
        "found by SMTP address lookup'</p></body></html>\n"
    )
    body = multipart(
        b,
        part(
            f'Content-Type: multipart/alternative; boundary="{alt}"',
            multipart(
                alt,
                part(
                    'Content-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: quoted-printable',
                    qp(text.encode()),
                ),
                part(
                    'Content-Type: text/html; charset="us-ascii"\nContent-Transfer-Encoding: quoted-printable',
                    qp(html.encode()),
                ),
            ),
        ),
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com\n"
            "Received-From-MTA: dns;mta1.shop.example\n"
            "Arrival-Date: Tue, 14 May 2024 10:45:00 +0000\n\n"
            "Final-Recipient: rfc822;wendy@contoso.example\nAction: failed\nStatus: 5.1.10\n"
            "Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup\n",
        ),
        part("Content-Type: message/rfc822", original(n, "wendy@contoso.example")),
    )
    raw = (
        f"From: postmaster@contoso.example\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Undeliverable: Your order #12345 has shipped\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{b}"\n'
        "Content-Language: en-US\nX-MS-Exchange-Message-Is-Ndr:\n"
        "Message-ID: <a1b2c3d4-1234-5678-9abc-def012345678@AM0PR01MB1234.eurprd01.prod.exchangelabs.com>\n"
        "MIME-Version: 1.0\n\n" + body
    )
    return raw, [failed("wendy@contoso.example", "address_not_exist", 550, "5.1.10", **corr(n))]


@sample("office365_ndr_text_only_access_denied")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 22
    text = (
        "Delivery has failed to these recipients or groups:\n\n"
        "xavier@fabrikam.example<mailto:xavier@fabrikam.example>\n"
        "Your message wasn't delivered because the recipient's email provider rejected it.\n\n\n"
        "Diagnostic information for administrators:\n\n"
        "Generating server: DM6PR02MB5678.namprd02.prod.outlook.com\n\n"
        "xavier@fabrikam.example\n"
        "Remote Server returned '550 5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; "
        "authentication required; Delivery restriction check failed because the sender was not authenticated when sending to this group'\n\n"
        "Original message headers:\n\n" + original(n, "xavier@fabrikam.example", body=False)
    )
    raw = (
        f"From: Microsoft Outlook <postmaster@fabrikam.example>\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Undeliverable: Your order #12345 has shipped\nContent-Language: en-US\n"
        "X-MS-Exchange-Message-Is-Ndr:\nMIME-Version: 1.0\n"
        'Content-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: quoted-printable\n\n'
        + qp(text.encode())
    )
    return raw, [
        failed("xavier@fabrikam.example", "sender_recipient_rejected", 550, "5.7.133", **corr(n))
    ]


@sample("exchange2007_ndr_recip_not_found")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 23
    raw = (
        f"From: System Administrator <postmaster@corp.exchange.example>\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Undeliverable: Your order #12345 has shipped\nContent-Language: en-US\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "Delivery has failed to these recipients or distribution lists:\n\n"
        "yara@corp.exchange.example\n"
        "The recipient's e-mail address was not found in the recipient's e-mail system. "
        "Microsoft Exchange will not try to redeliver this message for you.\n\n"
        "_____\nSent by Microsoft Exchange Server 2007\n\n"
        "Diagnostic information for administrators:\n\n"
        "Generating server: EXCH01.corp.exchange.example\n\n"
        "yara@corp.exchange.example\n"
        "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\n"
        "Original message headers:\n\n" + original(n, "yara@corp.exchange.example", body=False)
    )
    return raw, [failed("yara@corp.exchange.example", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("exchange2003_unknown_recipient")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 24
    b = "----_=_NextPart_000_01C7A1B2.C3D4E5F6"
    human = (
        "Your message\n\n"
        "  To:      zack@legacy.example\n"
        "  Subject: Your order #12345 has shipped\n"
        "  Sent:    Tue, 14 May 2024 10:44:58 +0000\n\n"
        "did not reach the following recipient(s):\n\n"
        "zack@legacy.example on Tue, 14 May 2024 10:45:03 +0000\n"
        "    The recipient name is not recognized\n"
        "\tThe MTS-ID of the original message is: c=US;a= ;p=LEGACY;l=EXCH2003-240514104503Z-1\n"
        "    MSEXCH:IMS:LEGACY:CORP:EXCH2003 0 (000C05A6) Unknown Recipient\n"
    )
    body = multipart(
        b,
        part('Content-Type: text/plain;\n\tcharset="iso-8859-1"', human),
        part("Content-Type: message/rfc822", original(n, "zack@legacy.example")),
    )
    raw = (
        f"From: System Administrator <postmaster@legacy.example>\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Undeliverable: Your order #12345 has shipped\n"
        "X-MS-Embedded-Report: \nX-Mailer: Internet Mail Service (5.5.2657.72)\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed;\n\tboundary="{b}"\n\n' + body
    )
    return raw, [failed("zack@legacy.example", "address_not_exist", None, None, **corr(n))]


@sample("outlook_com_mailbox_unavailable")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 25
    b = "9B095B5ADSN=_01DA9E3C1A2B3C4D00000001BAY004.hotmail.example"
    body = multipart(
        b,
        part(
            "Content-Type: text/plain; charset=unicode-1-1-utf-7",
            "This is an automatically generated Delivery Status Notification.\n\n"
            "Delivery to the following recipients failed.\n\n       amy@outlook.example\n",
        ),
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns;BAY004-MC1F12.hotmail.example\n"
            "Received-From-MTA: dns;mta1.shop.example\n"
            "Arrival-Date: Tue, 14 May 2024 10:45:00 -0700\n\n"
            "Final-Recipient: rfc822;amy@outlook.example\nAction: failed\nStatus: 5.5.0\n"
            "Diagnostic-Code: smtp;550 Requested action not taken: mailbox unavailable (-2147467259:3966:-2147467259)\n",
        ),
        part("Content-Type: message/rfc822", original(n, "amy@outlook.example")),
    )
    raw = (
        f"From: postmaster@outlook.example\nTo: {rp(n)}\n{DATE}\n"
        f'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;\n\tboundary="{b}"\n'
        "Subject: Delivery Status Notification (Failure)\n\n" + body
    )
    return raw, [failed("amy@outlook.example", "address_not_exist", 550, "5.5.0", **corr(n))]


# --- Lotus ----------------------------------------------------------------------------------------


@sample("domino_not_listed")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 26
    b = "0__=0ABBF2D7DFE1A2B38f9e8a93df938690918c0ABBF2D7DFE1A2B3"
    human = (
        "Your message\n\n"
        "  Subject: Your order #12345 has shipped\n\n"
        "was not delivered to:\n\n"
        "  ben@domino.example\n\n"
        "because:\n\n"
        "  User ben (ben@domino.example) not listed in Domino Directory\n"
    )
    body = multipart(
        b,
        part("Content-type: text/plain; charset=US-ASCII", human),
        part("Content-type: message/rfc822", original(n, "ben@domino.example")),
    )
    raw = (
        f"From: Postmaster@domino.example\nTo: {rp(n)}\n{DATE}\n"
        "Subject: DELIVERY FAILURE: User ben (ben@domino.example) not listed in Domino Directory\n"
        f'MIME-Version: 1.0\nContent-type: multipart/mixed;\n\tBoundary="{b}"\n\n' + body
    )
    return raw, [failed("ben@domino.example", "address_not_exist", None, None, **corr(n))]


@sample("lotus_notes_failure_reasons")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 27
    raw = (
        f"From: Mail Router <postmaster@notes.example>\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Undeliverable message\nContent-Type: text/plain; charset=iso-8859-1\n\n"
        "------- Failure Reasons  --------\n\n"
        "User not listed in public Name & Address Book\n"
        "cara@notes.example\n\n\n"
        "------- Returned Message --------\n" + original(n, "cara@notes.example")
    )
    return raw, [failed("cara@notes.example", "address_not_exist", None, None, **corr(n))]


# --- Google --------------------------------------------------------------------------------------


@sample("gmail_dsn_address_not_found")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 28
    b = "000000000000a1b2c3061855d1e2"
    alt = "000000000000a1b2c2061855d1e1"
    text = (
        "\n** Address not found **\n\n"
        "Your message wasn't delivered to dan@gmail.example because the address couldn't be found, "
        "or is unable to receive mail.\n\n"
        "Learn more here: https://support.google.com/mail/?p=NoSuchUser\n\n"
        "The response was:\n\n"
        "550 5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces. "
        "For more information, go to https://support.google.com/mail/?p=NoSuchUser "
        "d9443c01a7336-1ef0b9f5b3asor1234567ad.12 - gsmtp\n"
    )
    html = (
        "<html><body><h2>Address not found</h2><p>"
        + text.replace("\n", "<br>")
        + "</p></body></html>"
    )
    body = multipart(
        b,
        part(
            f'Content-Type: multipart/alternative; boundary="{alt}"',
            multipart(
                alt,
                part('Content-Type: text/plain; charset="UTF-8"', text),
                part('Content-Type: text/html; charset="UTF-8"', html),
            ),
        ),
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; googlemail.com\n"
            "Received-From-MTA: dns; news@shop.example\n"
            "Arrival-Date: Tue, 14 May 2024 03:45:00 -0700 (PDT)\n"
            "X-Original-Message-ID: " + msgid(n) + "\n\n"
            "Final-Recipient: rfc822; dan@gmail.example\nAction: failed\nStatus: 5.1.1\n"
            "Remote-MTA: dns; gmail-smtp-in.l.google.com. (2001:4860:4864:20::1b, the server for the domain gmail.example.)\n"
            "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
            " 550-5.1.1 double-checking the recipient's email address for typos or\n"
            " 550-5.1.1 unnecessary spaces. For more information, go to\n"
            " 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser d9443c01a7336-1ef0b9f5b3asor - gsmtp\n"
            "Last-Attempt-Date: Tue, 14 May 2024 03:45:03 -0700 (PDT)\n",
        ),
        part("Content-Type: message/rfc822", original(n, "dan@gmail.example")),
    )
    raw = (
        f"Delivered-To: {rp(n)}\nReturn-Path: <>\n{DATE}\n"
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
        f"To: {rp(n)}\nAuto-Submitted: auto-replied\n"
        "Subject: Delivery Status Notification (Failure)\nReferences: " + msgid(n) + "\n"
        "In-Reply-To: " + msgid(n) + "\nX-Failed-Recipients: dan@gmail.example\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; boundary="{b}"; report-type=delivery-status\n\n' + body
    )
    return raw, [failed("dan@gmail.example", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("gmail_legacy_text_state14")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 29
    raw = (
        f"{DATE}\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: {rp(n)}\n"
        "Subject: Delivery Status Notification (Failure)\nContent-Type: text/plain; charset=ISO-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        + qp(
            b"This is an automatically generated Delivery Status Notification\n\n"
            b"Delivery to the following recipient failed permanently:\n\n"
            b"     ella@legacy-isp.example\n\n"
            b"Technical details of permanent failure: \n"
            b"Google tried to deliver your message, but it was rejected by the server for the "
            b"recipient domain legacy-isp.example by mx.legacy-isp.example. [192.0.2.99].\n\n"
            b"The error that the other server returned was:\n"
            b"550 550 5.1.1 <ella@legacy-isp.example>: User unknown (state 14).\n\n"
            b"----- Original message -----\n\n"
        )
        + original(n, "ella@legacy-isp.example")
    )
    return raw, [failed("ella@legacy-isp.example", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("gmail_dsn_delay")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 30
    b = "000000000000d4e5f6061855d1f0"
    text = (
        "** Delivery incomplete **\n\n"
        "There was a temporary problem delivering your message to fred@busy.example. "
        "Gmail will retry for 46 more hours. You'll be notified if the delivery fails permanently.\n\n"
        "The response was:\n\n"
        "421 4.7.0 [192.0.2.10] Our system has detected an unusual rate of mail, try again later\n"
    )
    body = multipart(
        b,
        part('Content-Type: text/plain; charset="UTF-8"', text),
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; googlemail.com\nArrival-Date: Tue, 14 May 2024 03:45:00 -0700 (PDT)\n\n"
            "Final-Recipient: rfc822; fred@busy.example\nAction: delayed\nStatus: 4.7.0\n"
            "Diagnostic-Code: smtp; 421 4.7.0 [192.0.2.10] Our system has detected an unusual rate of mail, try again later\n"
            "Will-Retry-Until: Thu, 16 May 2024 03:45:00 -0700 (PDT)\n",
        ),
        part("Content-Type: text/rfc822-headers", original(n, "fred@busy.example", body=False)),
    )
    raw = (
        f"{DATE}\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: {rp(n)}\n"
        "Subject: Delivery Status Notification (Delay)\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; boundary="{b}"; report-type=delivery-status\n\n' + body
    )
    return raw, [delayed("fred@busy.example", smtp_code=421, enhanced_status="4.7.0", **corr(n))]


@sample("gmail_dsn_spam_rejected")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 31
    b = "000000000000f6e5d4061855d2a0"
    diag = (
        "550-5.7.1 [192.0.2.10] Our system has detected that this message is likely\n"
        " 550-5.7.1 unsolicited mail. To reduce the amount of spam sent to Gmail, this\n"
        " 550 5.7.1 message has been blocked. - gsmtp"
    )
    body = multipart(
        b,
        part(
            'Content-Type: text/plain; charset="UTF-8"',
            "** Message blocked **\n\nYour message to gus@gmail.example has been blocked. See technical details below for more information.\n\n"
            "The response was:\n\n" + diag.replace("\n ", "\n") + "\n",
        ),
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; googlemail.com\n\n"
            "Final-Recipient: rfc822; gus@gmail.example\nAction: failed\nStatus: 5.7.1\n"
            f"Diagnostic-Code: smtp; {diag}\n",
        ),
        part("Content-Type: message/rfc822", original(n, "gus@gmail.example")),
    )
    raw = (
        f"{DATE}\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: {rp(n)}\n"
        "Subject: Delivery Status Notification (Failure)\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; boundary="{b}"; report-type=delivery-status\n\n' + body
    )
    return raw, [failed("gus@gmail.example", "spam", 550, "5.7.1", **corr(n))]


# --- Yahoo, AOL, Apple, Comcast, filters -------------------------------------------------------


@sample("yahoo_remote_host_said")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 32
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@yahoo.example\nTo: {rp(n)}\nSubject: Failure Notice\n"
        "X-YMailISG: fK1hWQ0WLDuD0mNpbbpT6bk3pIuZ.1gpp8Ty1s5f3xE3d\n\n"
        "Sorry, we were unable to deliver your message to the following address.\n\n"
        "<hana@example.jp>:\n"
        "Remote host said: 550 5.1.1 <hana@example.jp>: Recipient address rejected: User unknown [RCPT_TO]\n\n"
        "--- Below this line is a copy of the message.\n\n" + original(n, "hana@example.jp")
    )
    return raw, [failed("hana@example.jp", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("postfix_quoting_yahoo_no_account")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 33
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mta2.shop.example (Mail Delivery System)\nTo: {rp(n)}\n"
        "Subject: Undelivered Mail Returned to Sender\nContent-Type: text/plain; charset=us-ascii\n\n"
        + postfix_human(
            "mta2.shop.example",
            "<igor@yahoo.example>: host mta7.am0.yahoodns.example[67.195.204.72] said: 554\n"
            "    delivery error: dd This user doesn't have a yahoo.com account\n"
            "    (igor@yahoo.example) [0] - mta1234.mail.gq1.yahoo.example (in reply to end\n"
            "    of DATA command)\n",
        )
    )
    return raw, [failed("igor@yahoo.example", "address_not_exist", 554, None, return_path=rp(n))]


@sample("postfix_quoting_icloud_policy")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 34
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mta2.shop.example (Mail Delivery System)\nTo: {rp(n)}\n"
        "Subject: Undelivered Mail Returned to Sender\nContent-Type: text/plain; charset=us-ascii\n\n"
        + postfix_human(
            "mta2.shop.example",
            "<jack@icloud.example>: host mx01.mail.icloud.example[17.57.155.23] said: 550\n"
            "    5.1.1 <jack@icloud.example>: user does not exist (in reply to RCPT TO\n"
            "    command)\n",
        )
    )
    return raw, [
        failed("jack@icloud.example", "address_not_exist", 550, "5.1.1", return_path=rp(n))
    ]


@sample("postfix_quoting_comcast_dnsbl")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 35
    raw = (
        f"{DATE}\nFrom: MAILER-DAEMON@mta2.shop.example (Mail Delivery System)\nTo: {rp(n)}\n"
        "Subject: Undelivered Mail Returned to Sender\nContent-Type: text/plain; charset=us-ascii\n\n"
        + postfix_human(
            "mta2.shop.example",
            "<kim@comcast.example>: host mx1.comcast.example[96.114.157.80] said: 554\n"
            "    resimta-po-01v.sys.comcast.example resimta comcast 192.0.2.10 found on one or\n"
            "    more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000010\n"
            "    (in reply to MAIL FROM command)\n",
        )
    )
    return raw, [failed("kim@comcast.example", "ip_domain_rejected", 554, None, return_path=rp(n))]


@sample("amazon_ses_dsn")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 36
    b = "----=_Part_1234567_891011121.1715683503000"
    body = multipart(
        b,
        part(
            "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 7bit",
            "An error occurred while trying to deliver the mail to the following recipients:\n"
            "lena@example.co.uk\n",
        ),
        part(
            "Content-Type: message/delivery-status\nContent-Transfer-Encoding: 7bit",
            "Reporting-MTA: dns; a8-50.smtp-out.amazonses.example\n\n"
            "Action: failed\nFinal-Recipient: rfc822; lena@example.co.uk\n"
            "Diagnostic-Code: smtp; 550 5.1.1 lena@example.co.uk: Recipient address rejected: User unknown in relay recipient table\n"
            "Status: 5.1.1\n",
        ),
        part(
            "Content-Type: text/rfc822-headers\nContent-Transfer-Encoding: 7bit",
            original(n, "lena@example.co.uk", body=False),
        ),
    )
    raw = (
        f"From: MAILER-DAEMON@amazonses.example\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Delivery Status Notification (Failure)\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; boundary="{b}"; report-type=delivery-status\n'
        "X-SES-Outgoing: 2024.05.14-54.240.8.50\n\n" + body
    )
    return raw, [failed("lena@example.co.uk", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("amazon_ses_legacy_text")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 37
    raw = (
        f"From: MAILER-DAEMON@email-bounces.amazonses.example\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Delivery Status Notification (Failure)\nX-AWS-Outgoing: 199.255.192.156\n"
        "Content-Type: text/plain; charset=UTF-8\n\n"
        "The following message to <mark@example.net.au> was undeliverable.\n"
        "The reason for the problem:\n"
        "5.1.0 - Unknown address error 550-'5.1.1 <mark@example.net.au>: Recipient address rejected: "
        "User unknown in virtual mailbox table'\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        + original(n, "mark@example.net.au")
    )
    return raw, [failed("mark@example.net.au", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("mimecast_policy_rejection")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 38
    raw = (
        f"From: Mimecast Postmaster <postmaster@mimecast.example>\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Failure Notice\nContent-Type: text/plain; charset=utf-8\n\n"
        "Your message couldn't be delivered to the recipients shown below.\n\n"
        "Recipient(s): nina@lawfirm.example\n\n"
        "Reason: 550 Rejected by header based Blocked Senders - block policy for Header From "
        "- https://community.mimecast.com/docs/DOC-1369#550 [Ab1Cd2Ef3Gh4Ij5Kl6Mn7O.uk123]\n"
    )
    return raw, [
        failed("nina@lawfirm.example", "sender_recipient_rejected", 550, None, return_path=rp(n))
    ]


@sample("proofpoint_ip_block")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 39
    raw = (
        f"From: Mail Delivery Subsystem <MAILER-DAEMON@pps.filterd.example>\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Returned mail: see transcript for details\nContent-Type: text/plain; charset=us-ascii\n\n"
        "The original message was received at Tue, 14 May 2024 06:45:00 -0400\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        "<omar@bank.example>\n"
        "    (reason: 554 5.7.1 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.10)\n"
    )
    return raw, [failed("omar@bank.example", "ip_domain_rejected", 554, "5.7.1", return_path=rp(n))]


# --- Chinese providers ----------------------------------------------------------------------


@sample("qq_bounce_gb18030_base64_html")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 40
    html = (
        '<html><head><meta charset="gb18030"><style>p{margin:0}</style></head><body>'
        "<p>很抱歉您的邮件被退回，以下是该邮件的相关信息：</p>"
        "<p>被退回的邮件：</p>"
        "<table><tr><td>主　　题：</td><td>Your order #12345 has shipped</td></tr>"
        "<tr><td>时　　间：</td><td>2024年5月14日(星期二) 晚上6:45</td></tr>"
        "<tr><td>收 件 人：</td><td>xiaoming@qq.example</td></tr></table>"
        "<p>退信原因：</p><p>该邮件被退回，因为收件人邮箱地址不存在。</p>"
        "<p>550 Mailbox not found or access denied</p>"
        "<p>建议解决方案：请检查收件人地址是否正确。</p></body></html>"
    )
    b = "----=_NextPart_6643A1F3_0A1B2C3D_5E6F7081"
    body = multipart(
        b,
        part(
            'Content-Type: text/html;\n\tcharset="gb18030"\nContent-Transfer-Encoding: base64',
            b64(html.encode("gb18030")),
        ),
        part("Content-Type: message/rfc822", original(n, "xiaoming@qq.example")),
    )
    subject = word("退信：Your order #12345 has shipped", "GB2312")
    raw = (
        f'From: "{word("系统退信", "GB2312")}" <PostMaster@qq.example>\nTo: {rp(n)}\n{DATE}\n'
        f"Subject: {subject}\nMime-Version: 1.0\n"
        f'Content-Type: multipart/mixed;\n\tboundary="{b}"\n\n' + body
    )
    return raw.replace("\n", "\r\n").encode(), [
        failed("xiaoming@qq.example", "address_not_exist", 550, None, **corr(n))
    ]


@sample("qq_exmail_rejected_no_code")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 41
    text = (
        "此邮件是退信。\n\n"
        "很抱歉您发送的邮件被退回，以下是该邮件的相关信息：\n"
        "收件人：li.lei@corp.exmail.example\n"
        "退信原因：对方服务器拒收了您的邮件，请联系收件人确认。\n"
    )
    raw = (
        f"From: PostMaster@exmail.example\nTo: {rp(n)}\n{DATE}\n"
        f"Subject: {word('退信', 'GBK')}\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=GBK\nContent-Transfer-Encoding: base64\n\n"
        + b64(text.encode("gbk"))
    )
    return raw.replace("\n", "\r\n").encode(), [
        failed(
            "li.lei@corp.exmail.example", "sender_recipient_rejected", None, None, return_path=rp(n)
        )
    ]


@sample("netease_163_user_not_found_gbk_qp")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 42
    text = (
        "抱歉，您的邮件被退回来了……\n\n"
        "原邮件信息：\n"
        "时　间：2024-05-14 18:45:00\n"
        "主　题：Your order #12345 has shipped\n"
        "收件人：wang.fang@163.example\n\n"
        "退信原因：\n"
        "您发送给 wang.fang@163.example 的邮件，收件人地址不存在。\n"
        "原因：550 User not found: wang.fang@163.example\n"
    )
    b = "----=_Part_123456_789012345.1715683503000"
    body = multipart(
        b,
        part(
            "Content-Type: text/plain; charset=GBK\nContent-Transfer-Encoding: quoted-printable",
            qp(text.encode("gbk")),
        ),
        part("Content-Type: message/rfc822", original(n, "wang.fang@163.example")),
    )
    raw = (
        f"From: postmaster@163.example\nTo: {rp(n)}\n{DATE}\n"
        f"Subject: {word('系统退信', 'GBK')}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed;\n\tboundary="{b}"\n\n' + body
    )
    return raw.replace("\n", "\r\n").encode(), [
        failed("wang.fang@163.example", "address_not_exist", 550, None, **corr(n))
    ]


@sample("netease_126_spam_content")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 43
    text = (
        "抱歉，您的邮件被退回来了……\n\n"
        "收件人：zhang.wei@126.example\n"
        "退信原因：\n"
        "554 DT:SPM 126 smtp1,C8mowAB3T6xXQUNm5bIzAA--.12345S2 1715683503, "
        "发送的邮件内容包含了未被许可的信息，或被系统识别为垃圾邮件。\n"
    )
    raw = (
        f"From: postmaster@126.example\nTo: {rp(n)}\n{DATE}\n"
        f"Subject: {word('系统退信', 'GB2312')}\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=gb2312\nContent-Transfer-Encoding: base64\n\n"
        + b64(text.encode("gb18030"))
    )
    return raw.replace("\n", "\r\n").encode(), [
        failed("zhang.wei@126.example", "spam", 554, None, return_path=rp(n))
    ]


@sample("sina_recipient_missing_utf8_8bit")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 44
    text = (
        "您好，这是新浪邮件系统的退信通知。\n\n"
        "您发送到 liu.yang@sina.example 的邮件发送失败。\n"
        "失败原因：收件人邮箱不存在，请确认邮箱地址。\n"
    )
    raw = (
        f"From: =?utf-8?B?5paw5rWq6YKu566x?= <mailer-daemon@sina.example>\nTo: {rp(n)}\n{DATE}\n"
        f"Subject: {word('邮件投递失败', 'UTF-8')}\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + text
    )
    return raw.replace("\n", "\r\n").encode(), [
        failed("liu.yang@sina.example", "address_not_exist", None, None, return_path=rp(n))
    ]


@sample("exmail_mailbox_full_gb2312")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 45
    text = (
        "很抱歉您的邮件被退回。\n"
        "收件人：chen.jing@corp.exmail.example\n"
        "退信原因：收件人邮箱空间不足，无法接收新邮件。\n"
        "552 Requested mail action aborted: exceeded storage allocation\n"
    )
    raw = (
        f"From: PostMaster@exmail.example\nTo: {rp(n)}\n{DATE}\n"
        f"Subject: {word('退信', 'GB2312')}\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=gb2312\nContent-Transfer-Encoding: 8bit\n\n"
    ).replace("\n", "\r\n").encode() + text.replace("\n", "\r\n").encode("gb2312")
    return raw, [failed("chen.jing@corp.exmail.example", "other", 552, None, return_path=rp(n))]


@sample("big5_taiwan_account_missing")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 46
    text = (
        "您的郵件無法投遞到以下收件人：\n\n"
        "收件人：lin.mei@hinet.example\n"
        "原因：收件人帳號不存在 (550 5.1.1 user unknown)\n"
    )
    raw = (
        f"From: Mail Delivery System <MAILER-DAEMON@msa.hinet.example>\nTo: {rp(n)}\n{DATE}\n"
        f"Subject: {word('無法投遞的郵件', 'Big5')}\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=big5\nContent-Transfer-Encoding: base64\n\n"
        + b64(text.encode("big5"))
    )
    return raw.replace("\n", "\r\n").encode(), [
        failed("lin.mei@hinet.example", "address_not_exist", 550, "5.1.1", return_path=rp(n))
    ]


@sample("japanese_iso2022jp_unknown_user")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 47
    text = (
        "以下のアドレスへのメールは配信できませんでした。\n\n"
        "宛先: taro@docomo.example\n"
        "理由: 宛先不明 (550 5.1.1 <taro@docomo.example>... User unknown)\n"
    )
    raw = (
        f"From: MAILER-DAEMON@mail.docomo.example\nTo: {rp(n)}\n{DATE}\n"
        f"Subject: =?ISO-2022-JP?B?{base64.b64encode('配信エラー'.encode('iso2022_jp')).decode()}?=\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-2022-JP\nContent-Transfer-Encoding: 7bit\n\n"
    ).replace("\n", "\r\n").encode() + text.replace("\n", "\r\n").encode("iso2022_jp")
    return raw, [
        failed("taro@docomo.example", "address_not_exist", 550, "5.1.1", return_path=rp(n))
    ]


# --- RFC 3464 edge cases ---------------------------------------------------------------------


def dsn_mail(
    n: int,
    status_part: str,
    human: str = "",
    *,
    subject: str = "Delivery Status Notification (Failure)",
) -> str:
    b = f"dsn-edge-{n}"
    parts = []
    if human:
        parts.append(part("Content-Type: text/plain; charset=us-ascii", human))
    parts.append(status_part)
    parts.append(
        part("Content-Type: text/rfc822-headers", original(n, "someone@example.com", body=False))
    )
    return (
        f"From: MAILER-DAEMON@relay.example\nTo: {rp(n)}\n{DATE}\nSubject: {subject}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\n\n'
        + multipart(b, *parts)
    )


@sample("dsn_base64_status_part")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 48
    status = (
        "Reporting-MTA: dns; relay.example\r\n\r\n"
        "Final-Recipient: rfc822; paula@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <paula@example.com>: mailbox unavailable\r\n"
    )
    raw = dsn_mail(
        n,
        part(
            "Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64",
            b64(status.encode()),
        ),
        "Delivery to the following recipient failed permanently: paula@example.com\n",
    )
    return raw, [failed("paula@example.com", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("dsn_success_delivered")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 49
    raw = dsn_mail(
        n,
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; relay.example\n\n"
            "Final-Recipient: rfc822; rita@example.com\nAction: delivered\nStatus: 2.0.0\n"
            "Diagnostic-Code: smtp; 250 2.0.0 OK 1715683503 queued as 4VfQ9\n",
        ),
        "Your message was successfully delivered to the destination(s) listed below.\n",
        subject="Delivery Status Notification (Success)",
    )
    return raw, [
        finding(
            recipient="rita@example.com",
            action="delivered",
            category=None,
            permanent=False,
            **corr(n),
        )
    ]


@sample("dsn_no_status_user_unknown_text")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 50
    raw = dsn_mail(
        n,
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; relay.example\n\nFinal-Recipient: rfc822; steve@example.com\nAction: failed\n",
        ),
        "Delivery to steve@example.com failed: user unknown.\n",
    )
    return raw, [failed("steve@example.com", "address_not_exist", None, None, **corr(n))]


@sample("dsn_no_status_nothing_known")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 51
    raw = dsn_mail(
        n,
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; relay.example\n\nFinal-Recipient: rfc822; tom@example.com\nAction: failed\n",
        ),
    )
    return raw, [failed("tom@example.com", "other", None, None, **corr(n))]


@sample("dsn_three_recipients_mixed")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 52
    raw = dsn_mail(
        n,
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; relay.example\n\n"
            "Original-Recipient: rfc822;una@example.com\nFinal-Recipient: rfc822;una@example.com\n"
            "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n\n"
            "Final-Recipient: rfc822;vic@example.com\nAction: delayed\nStatus: 4.2.2\n"
            "Diagnostic-Code: smtp; 452 4.2.2 mailbox full, will retry\n\n"
            "Final-Recipient: rfc822;walt@example.com\nAction: failed\nStatus: 5.7.1\n"
            "Diagnostic-Code: smtp; 554 5.7.1 Message rejected as spam by Content Filtering\n",
        ),
    )
    return raw, [
        failed("una@example.com", "address_not_exist", 550, "5.1.1", **corr(n)),
        delayed("vic@example.com", smtp_code=452, enhanced_status="4.2.2", **corr(n)),
        failed("walt@example.com", "spam", 554, "5.7.1", **corr(n)),
    ]


@sample("dsn_lf_only_line_endings")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 53
    raw = dsn_mail(
        n,
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; relay.example\n\nFinal-Recipient: rfc822; xena@example.com\n"
            "Action: failed\nStatus: 5.1.3\nDiagnostic-Code: smtp; 553 5.1.3 Invalid address syntax\n",
        ),
    )
    return raw.encode(), [
        failed("xena@example.com", "address_format_error", 553, "5.1.3", **corr(n))
    ]


@sample("dsn_rate_limited_failed")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 54
    raw = dsn_mail(
        n,
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; relay.example\n\nFinal-Recipient: rfc822; yves@outlook.example\n"
            "Action: failed\nStatus: 4.7.650\n"
            "Diagnostic-Code: smtp; 451 4.7.650 The mail server [192.0.2.10] has been temporarily "
            "rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.outlook.example (S775)\n",
        ),
    )
    return raw, [
        failed(
            "yves@outlook.example",
            "other",
            451,
            "4.7.650",
            permanent=False,
            pause_reason="ip_quota",
            **corr(n),
        )
    ]


@sample("dsn_original_message_rfc822_verp_in_return_path")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 55
    b = "verp-check"
    raw = (
        "From: MAILER-DAEMON@relay.example\nTo: news@shop.example\n"
        f"{DATE}\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\n\n'
        + multipart(
            b,
            part(
                "Content-Type: message/delivery-status",
                f"Reporting-MTA: dns; relay.example\nX-Postfix-Sender: rfc822; {rp(n)}\n\n"
                "Final-Recipient: rfc822; zoe@example.com\nAction: failed\nStatus: 5.1.1\n"
                "Diagnostic-Code: smtp; 550 5.1.1 user unknown\n",
            ),
            part("Content-Type: message/rfc822", original(n, "zoe@example.com", return_path=True)),
        )
    )
    return raw, [failed("zoe@example.com", "address_not_exist", 550, "5.1.1", **corr(n))]


@sample("office365_german_ndr_two_recipients")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 56
    text = (
        "Fehler bei der Zustellung an folgende Empfänger oder Gruppen:\n\n"
        "anna.schmidt@firma.example\n"
        "Die E-Mail-Adresse, die Sie eingegeben haben, wurde nicht gefunden.\n\n"
        "bernd.koch@firma.example\n"
        "Das Postfach des Empfängers ist voll.\n\n\n"
        "Diagnoseinformationen für Administratoren:\n\n"
        "Generierender Server: FR2P281MB0123.DEUP281.PROD.OUTLOOK.COM\n\n"
        "anna.schmidt@firma.example\n"
        "Vom Remoteserver wurde '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup' zurückgegeben.\n\n"
        "bernd.koch@firma.example\n"
        "Vom Remoteserver wurde '552 5.2.2 STOREDRV.Deliver; mailbox full' zurückgegeben.\n\n"
        "Ursprüngliche Nachrichtenkopfzeilen:\n\n"
    )
    raw = (
        f"From: Microsoft Outlook <postmaster@firma.example>\nTo: {rp(n)}\n{DATE}\n"
        "Subject: Unzustellbar: Your order #12345 has shipped\nContent-Language: de-DE\n"
        'MIME-Version: 1.0\nContent-Type: text/plain; charset="iso-8859-1"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n" + qp(text.encode("latin-1"))
    )
    return raw, [
        failed("anna.schmidt@firma.example", "address_not_exist", 550, "5.1.10", return_path=rp(n)),
        failed("bernd.koch@firma.example", "other", 552, "5.2.2", return_path=rp(n)),
    ]


@sample("office365_html_only_ndr")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 57
    html = (
        "<html><head><style>.x{color:red}</style></head><body>"
        '<table><tr><td><b>Your message to <a href="mailto:carla@tailspin.example">carla@tailspin.example</a> '
        "couldn't be delivered.</b></td></tr>"
        "<tr><td>carla wasn't found at tailspin.example.</td></tr></table>"
        "<p><b>Diagnostic information for administrators:</b></p>"
        "<p>Generating server: BN8PR12MB3456.namprd12.prod.outlook.com<br>"
        "carla@tailspin.example<br>"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'</p>"
        "</body></html>"
    )
    raw = (
        f"From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@tailspin.example>\n"
        f"To: {rp(n)}\n{DATE}\nSubject: Undeliverable: Your order #12345 has shipped\n"
        "X-MS-Exchange-Message-Is-Ndr:\nMIME-Version: 1.0\n"
        'Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: base64\n\n'
        + b64(html.encode())
    )
    return raw, [
        failed("carla@tailspin.example", "address_not_exist", 550, "5.1.10", return_path=rp(n))
    ]


@sample("postfix_dsn_x_postfix_unknown_user")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 58
    raw = dsn_mail(
        n,
        part(
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; mail.smallbiz.example\n\n"
            "Final-Recipient: rfc822; kev@smallbiz.example\nOriginal-Recipient: rfc822;kev@smallbiz.example\n"
            'Action: failed\nStatus: 5.1.1\nDiagnostic-Code: X-Postfix; unknown user: "kev"\n',
        ),
        postfix_human("mail.smallbiz.example", '<kev@smallbiz.example>: unknown user: "kev"\n'),
        subject="Undelivered Mail Returned to Sender",
    )
    return raw, [failed("kev@smallbiz.example", "address_not_exist", None, "5.1.1", **corr(n))]


@sample("global_dsn_utf8_address")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 59
    b = "global-dsn"
    raw = (
        f"From: MAILER-DAEMON@mx.example.cn\nTo: {rp(n)}\n{DATE}\nSubject: Undelivered Mail Returned to Sender\n"
        f'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=global-delivery-status; boundary="{b}"\n\n'
        + multipart(
            b,
            part(
                "Content-Type: text/plain; charset=utf-8",
                "This is the mail system at host mx.example.cn.\n",
            ),
            part(
                "Content-Type: message/global-delivery-status; charset=utf-8",
                "Reporting-MTA: dns; mx.example.cn\n\n"
                "Final-Recipient: utf-8; 用户@例子.example\nAction: failed\nStatus: 5.1.1\n"
                "Diagnostic-Code: smtp; 550 5.1.1 <用户@例子.example>: mailbox unavailable\n",
            ),
            part(
                "Content-Type: message/global-headers", original(n, "用户@例子.example", body=False)
            ),
        )
    )
    return raw.replace("\n", "\r\n").encode(), [
        failed("用户@例子.example", "address_not_exist", 550, "5.1.1", return_path=rp(n))
    ]


# --- ARF -----------------------------------------------------------------------------------------


def arf_mail(
    n: int,
    sender: str,
    subject: str,
    human: str,
    fields: str,
    orig: str,
    *,
    headers_only: bool = False,
) -> str:
    b = f"arf-{n}-boundary"
    orig_type = "text/rfc822-headers" if headers_only else "message/rfc822"
    return (
        f"From: {sender}\nTo: fbl@shop.example\n{DATE}\nSubject: {subject}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=feedback-report;\n\tboundary="{b}"\n\n'
        + multipart(
            b,
            part(
                'Content-Type: text/plain; charset="US-ASCII"\nContent-Transfer-Encoding: 7bit',
                human,
            ),
            part("Content-Type: message/feedback-report", fields),
            part(f"Content-Type: {orig_type}\nContent-Disposition: inline", orig),
        )
    )


@sample("arf_yahoo_cfl_abuse")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 60
    raw = arf_mail(
        n,
        "Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.example>",
        "FW: Your order #12345 has shipped",
        "This is an email abuse report for an email message received from IP 192.0.2.10 on Tue, 14 May 2024 10:45:00 +0000\n",
        "Feedback-Type: abuse\nUser-Agent: Yahoo!-Mail-Feedback/2.0\nVersion: 0.1\n"
        f"Original-Mail-From: <{rp(n)}>\nOriginal-Rcpt-To: amelia@yahoo.example\n"
        "Received-Date: Tue, 14 May 2024 10:45:00 +0000\nSource-IP: 192.0.2.10\n"
        "Reported-Domain: shop.example\nAuthentication-Results: mta1002.mail.yahoo.example  from=shop.example; domainkeys=neutral (no sig);  from=shop.example; dkim=pass (ok)\n",
        original(n, "amelia@yahoo.example"),
    )
    return raw, [
        finding(
            "arf",
            recipient="amelia@yahoo.example",
            feedback_type="abuse",
            category=None,
            permanent=False,
            source_ip="192.0.2.10",
            user_agent="Yahoo!-Mail-Feedback/2.0",
            arrival_date="Tue, 14 May 2024 10:45:00 +0000",
            **corr(n),
        )
    ]


@sample("arf_aol_scomp_redacted")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 61
    raw = arf_mail(
        n,
        "AOL SComp <scomp@aol.net>",
        "Email Feedback Report for IP 192.0.2.10",
        "This is an email abuse report for an email message with the message-id of "
        f"{msgid(n)} received from IP address 192.0.2.10 on Tue, 14 May 2024 10:45:00 EDT\n\n"
        "For information, please review the text at http://postmaster.aol.example/tools/fbl.html\n",
        "Feedback-Type: abuse\nUser-Agent: AOL SComp\nVersion: 0.1\n"
        "Received-Date: Tue, 14 May 2024 10:45:00 EDT\nSource-IP: 192.0.2.10\n"
        "Reported-Domain: shop.example\nRedacted-Address: redacted@\n",
        original(n, "redacted@aol.example"),
    )
    return raw, [
        finding(
            "arf",
            recipient="redacted@aol.example",
            feedback_type="abuse",
            source_ip="192.0.2.10",
            user_agent="AOL SComp",
            **corr(n, return_path=False),
        )
    ]


@sample("arf_fraud_headers_only")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 62
    raw = arf_mail(
        n,
        "abuse-reports@isp.example",
        "Fraud report",
        "This is a fraud report.\n",
        "Feedback-Type: fraud\nUser-Agent: ISP-FBL/3.1\nVersion: 1\n"
        "Original-Rcpt-To: <ben.f@isp.example>\nArrival-Date: Tue, 14 May 2024 10:45:00 +0000\n"
        "Source-IP: 2001:db8::25\nReported-Uri: https://shop.example/offer\n",
        original(n, "ben.f@isp.example", body=False),
        headers_only=True,
    )
    return raw, [
        finding(
            "arf",
            recipient="ben.f@isp.example",
            feedback_type="fraud",
            source_ip="2001:db8::25",
            user_agent="ISP-FBL/3.1",
            **corr(n, return_path=False),
        )
    ]


@sample("arf_netease_auth_failure")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 63
    raw = arf_mail(
        n,
        "dmarc@163.example",
        "DMARC Failure Report for shop.example",
        "This is a spf/dkim authentication-failure report for an email message received from IP 192.0.2.10 on Tue, 14 May 2024 18:45:00 +0800.\n",
        "Feedback-Type: auth-failure\nUser-Agent: NtesDmarcReporter/1.0\nVersion: 1\n"
        "Original-Mail-From: news@shop.example\nOriginal-Rcpt-To: zhao.lei@163.example\n"
        "Arrival-Date: Tue, 14 May 2024 18:45:00 +0800\nSource-IP: 192.0.2.10\n"
        "Reported-Domain: shop.example\nAuth-Failure: dmarc\nDelivery-Result: reject\n",
        original(n, "zhao.lei@163.example", body=False),
        headers_only=True,
    )
    return raw, [
        finding(
            "arf",
            recipient="zhao.lei@163.example",
            feedback_type="auth-failure",
            source_ip="192.0.2.10",
            **corr(n, return_path=False),
        )
    ]


@sample("arf_not_spam_two_rcpt_to")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 64
    raw = arf_mail(
        n,
        "fbl@mail.example",
        "Not spam report",
        "The recipient moved this message out of the spam folder.\n",
        "Feedback-Type: not-spam\nUser-Agent: ExampleFBL/1.0\nVersion: 1\n"
        f"Original-Mail-From: <{rp(n)}>\n"
        "Original-Rcpt-To: <cleo@mail.example>\nOriginal-Rcpt-To: <cleo.alias@mail.example>\n"
        "Arrival-Date: Tue, 14 May 2024 10:45:00 +0000\n",
        original(n, "cleo@mail.example"),
    )
    return raw, [finding("arf", recipient="cleo@mail.example", feedback_type="not-spam", **corr(n))]


@sample("arf_base64_feedback_part")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 65
    b = "arf-b64"
    fields = (
        "Feedback-Type: abuse\r\nUser-Agent: Mail.Example-FBL/1.0\r\nVersion: 1\r\n"
        "Original-Rcpt-To: dmitri@mail.example.ru\r\nSource-IP: 192.0.2.10\r\n"
    )
    raw = (
        f"From: fbl@corp.mail.example.ru\nTo: fbl@shop.example\n{DATE}\nSubject: =?utf-8?B?0JbQsNC70L7QsdCw?=\n"
        f'MIME-Version: 1.0\nContent-Type: multipart/report; report-type="feedback-report"; boundary="{b}"\n\n'
        + multipart(
            b,
            part(
                "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
                b64("Жалоба на спам.\n".encode()),
            ),
            part(
                "Content-Type: message/feedback-report\nContent-Transfer-Encoding: base64",
                b64(fields.encode()),
            ),
            part("Content-Type: message/rfc822", original(n, "dmitri@mail.example.ru")),
        )
    )
    return raw, [
        finding(
            "arf",
            recipient="dmitri@mail.example.ru",
            feedback_type="abuse",
            source_ip="192.0.2.10",
            **corr(n, return_path=False),
        )
    ]


@sample("arf_fields_in_text_part")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 69
    b = "arf-mislabelled"
    raw = (
        f"From: fbl@isp3.example\nTo: fbl@shop.example\n{DATE}\nSubject: Abuse report\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{b}"\n\n'
        + multipart(
            b,
            part(
                "Content-Type: text/plain",
                "Feedback-Type: abuse\nUser-Agent: ISP3-FBL/0.9\nVersion: 1\n"
                "Original-Rcpt-To: gwen@isp3.example\nSource-IP: 192.0.2.10\n",
            ),
            part("Content-Type: message/rfc822", original(n, "gwen@isp3.example")),
        )
    )
    return raw, [
        finding(
            "arf",
            recipient="gwen@isp3.example",
            feedback_type="abuse",
            source_ip="192.0.2.10",
            user_agent="ISP3-FBL/0.9",
            **corr(n, return_path=False),
        )
    ]


@sample("jmrp_microsoft_complaint")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 66
    b = "jmrp-boundary-0001"
    orig = original(n, "dana@hotmail.example").replace(
        "X-Mailpulse-Id:", "X-HmXmrOriginalRecipient: <dana@hotmail.example>\nX-Mailpulse-Id:"
    )
    raw = (
        f"From: staff@hotmail.com\nTo: jmrp@shop.example\n{DATE}\n"
        "Subject: complaint about message from 192.0.2.10\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{b}"\n\n'
        + multipart(
            b,
            part(
                "Content-Type: text/plain; charset=us-ascii",
                "This is a Microsoft JMRP complaint. See the attached message.\n",
            ),
            part("Content-Type: message/rfc822\nContent-Disposition: inline", orig),
        )
    )
    return raw, [
        finding(
            "arf",
            recipient="dana@hotmail.example",
            feedback_type="abuse",
            source_ip="192.0.2.10",
            **corr(n, return_path=False),
        )
    ]


@sample("plain_abuse_report_inline_headers")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 67
    raw = (
        f"From: abuse-desk@isp2.example\nTo: abuse@shop.example\n{DATE}\nSubject: Spam report\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "This is an abuse report for an email message received from IP 192.0.2.10 on\n"
        "Tue, 14 May 2024 10:45:00 +0000. One of our users reported it as spam.\n\n"
        "----- Original Message Headers -----\n" + original(n, "eli@isp2.example", body=False)
    )
    return raw, [
        finding(
            "arf", recipient="eli@isp2.example", feedback_type="abuse", **corr(n, return_path=False)
        )
    ]


@sample("ses_complaint_forward")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 68
    b = "ses-complaint"
    raw = (
        f"From: complaints@email-abuse.amazonses.example\nTo: {rp(n)}\n{DATE}\n"
        "Subject: complaint about message from 192.0.2.10\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{b}"\n\n'
        + multipart(
            b,
            part(
                "Content-Type: text/plain",
                "Feedback-Type: abuse\nOriginal-Rcpt-To: fay@customer.example\nSource-IP: 192.0.2.10\n",
            ),
            part("Content-Type: message/rfc822", original(n, "fay@customer.example")),
        )
    )
    return raw, [
        finding(
            "arf",
            recipient="fay@customer.example",
            feedback_type="abuse",
            source_ip="192.0.2.10",
            **corr(n),
        )
    ]


# --- auto-replies -----------------------------------------------------------------------------------


def reply_mail(
    n: int, sender: str, subject: str, extra: str, body: str, *, charset: str = "utf-8"
) -> str:
    return (
        f"From: {sender}\nTo: {rp(n)}\n{DATE}\nSubject: {subject}\n"
        f"In-Reply-To: {msgid(n)}\nReferences: <older@shop.example> {msgid(n)}\n"
        f"{extra}MIME-Version: 1.0\nContent-Type: text/plain; charset={charset}\n\n{body}"
    )


@sample("autoreply_rfc3834_out_of_office")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 70
    raw = reply_mail(
        n,
        "Gina Miller <gina.miller@example.org>",
        "Out of Office: Your order #12345 has shipped",
        "Auto-Submitted: auto-replied\n",
        "I am out of the office until May 20 with limited access to email.\n",
    )
    return raw, [
        finding(
            "autoreply",
            recipient="gina.miller@example.org",
            category=None,
            permanent=False,
            original_message_id=msgid(n),
            return_path=rp(n),
        )
    ]


@sample("autoreply_exchange_automatic_reply")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 71
    raw = reply_mail(
        n,
        "Harry Ng <harry.ng@contoso.example>",
        "Automatic reply: Your order #12345 has shipped",
        "X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: harry.ng@contoso.example\n",
        "Thank you for your email. I'm currently away and will reply when I return.\n",
    )
    return raw, [
        finding("autoreply", recipient="harry.ng@contoso.example", original_message_id=msgid(n))
    ]


@sample("autoreply_german_abwesenheitsnotiz")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 72
    raw = reply_mail(
        n,
        "Ines Weber <ines.weber@firma.example>",
        "Abwesenheitsnotiz: Your order #12345 has shipped",
        "X-Autoreply: yes\n",
        "Ich bin bis zum 20. Mai nicht im Büro.\n",
    )
    return raw, [
        finding("autoreply", recipient="ines.weber@firma.example", original_message_id=msgid(n))
    ]


@sample("autoreply_chinese_gb2312_subject")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 73
    raw = reply_mail(
        n,
        "jie.huang@qq.example",
        word("自动回复: 您的订单已发货", "GB2312"),
        "",
        b64("您好，我正在休假，回来后会尽快回复您。\n".encode("gb18030")),
        charset="gb2312\nContent-Transfer-Encoding: base64",
    )
    return raw.replace("\n", "\r\n").encode(), [
        finding("autoreply", recipient="jie.huang@qq.example", original_message_id=msgid(n))
    ]


@sample("autoreply_japanese_iso2022jp")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    n = 74
    subject = f"=?ISO-2022-JP?B?{base64.b64encode('自動返信: ご注文の発送'.encode('iso2022_jp')).decode()}?="
    raw = reply_mail(
        n,
        "kenji@example.jp",
        subject,
        "Precedence: bulk\n",
        "only ascii body\n",
        charset="ISO-2022-JP",
    )
    return raw.replace("\n", "\r\n").encode(), [
        finding("autoreply", recipient="kenji@example.jp", original_message_id=msgid(n))
    ]


@sample("autoreply_french_precedence")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 75
    raw = reply_mail(
        n,
        "Luc Martin <luc.martin@orange.example>",
        "=?iso-8859-1?Q?R=E9ponse_automatique_:_Your_order_#12345?=",
        "Precedence: auto_reply\n",
        "Je suis absent jusqu'au 20 mai.\n",
    )
    return raw, [
        finding("autoreply", recipient="luc.martin@orange.example", original_message_id=msgid(n))
    ]


@sample("autoreply_spanish_x_autorespond")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 76
    raw = reply_mail(
        n,
        "maria@correo.example",
        "Respuesta automática: Your order #12345 has shipped",
        "X-Autorespond: Respuesta automática\n",
        "Estoy fuera de la oficina.\n",
    )
    return raw, [
        finding("autoreply", recipient="maria@correo.example", original_message_id=msgid(n))
    ]


@sample("autoreply_gmail_vacation_custom_subject")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 77
    raw = reply_mail(
        n,
        "Nora Quinn <nora.quinn@gmail.example>",
        "Re: Your order #12345 has shipped",
        "Auto-Submitted: auto-replied\nPrecedence: bulk\nX-Autoreply: yes\n",
        "Hi, I'm travelling this week and will read your message next Monday.\n",
    )
    return raw, [
        finding("autoreply", recipient="nora.quinn@gmail.example", original_message_id=msgid(n))
    ]


# --- neither -------------------------------------------------------------------------------------------


@sample("unknown_human_reply")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 80
    raw = reply_mail(
        n,
        "Oscar <oscar@example.net>",
        "Re: Your order #12345 has shipped",
        "",
        "Thanks! When will it arrive?\n\n> Hello,\n> Your order #12345 has shipped.\n",
    )
    return raw, [finding("unknown", category=None, recipient=None)]


@sample("unknown_read_receipt_mdn")
def _() -> tuple[str, list[dict[str, Any]]]:
    n = 81
    b = "mdn-boundary"
    raw = (
        f"From: pam@example.net\nTo: {rp(n)}\n{DATE}\nSubject: Read: Your order #12345 has shipped\n"
        f'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=disposition-notification; boundary="{b}"\n\n'
        + multipart(
            b,
            part("Content-Type: text/plain", "Your message was displayed on Tue, 14 May 2024.\n"),
            part(
                "Content-Type: message/disposition-notification",
                f"Reporting-UA: pam-pc; Thunderbird\nFinal-Recipient: rfc822;pam@example.net\nOriginal-Message-ID: {msgid(n)}\n"
                "Disposition: manual-action/MDN-sent-manually; displayed\n",
            ),
        )
    )
    return raw, [finding("unknown")]


@sample("unknown_binary_garbage")
def _() -> tuple[bytes, list[dict[str, Any]]]:
    data = bytes((i * 7919 + 13) % 256 for i in range(600))
    return data, [finding("unknown")]


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.glob("*.eml"):
        old.unlink()
    expected: dict[str, list[dict[str, Any]]] = {}
    for name, (data, findings) in sorted(SAMPLES.items()):
        (CORPUS / f"{name}.eml").write_bytes(data)
        expected[f"{name}.eml"] = findings
    (CORPUS / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(SAMPLES)} samples to {CORPUS}")


if __name__ == "__main__":
    main()
