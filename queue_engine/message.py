"""The MIME message of a send call, built once and shared by its recipients.

A call to 1,000 recipients stores one body; the per-recipient header lines
(To, Message-ID) are prepended at delivery time, which keeps ingest cheap and
Redis memory proportional to calls, not recipients.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, formataddr

_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "message-id",
        "x-mailpulse-id",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "return-path",
        "received",
    }
)


# What str.splitlines (and so the email package, which refuses them in a header)
# treats as a line end, and NUL: none may be in a header value.
LINE_BREAKS = "\r\n\0\v\f\x1c\x1d\x1e\x85\u2028\u2029"


class MessageError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def one_line(name: str, value: str) -> bool:
    """Whether the header stays one header as the email package reads it: it decodes
    RFC 2047 words on the way in, so `=?utf-8?q?=0D=0ABcc:_x?=` would become a new line."""
    try:
        decoded = str(SMTP.header_factory(name, value))
    except Exception:  # the parser's own errors on hostile input: not a header we can send
        return False
    return not any(c in decoded for c in LINE_BREAKS)


def check_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise MessageError("headers", "must be an object of header name to string value")
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise MessageError(f"headers.{name}", "is not a valid header field name")
        if name.lower() in RESERVED_HEADERS:
            raise MessageError(f"headers.{name}", "is set by mailpulse and cannot be given")
        if not isinstance(value, str):
            raise MessageError(f"headers.{name}", "must be a string")
        if any(c in value for c in LINE_BREAKS) or not one_line(name, value):
            raise MessageError(
                f"headers.{name}", "must not contain CR, LF, other line breaks or NUL"
            )
        if len(value) > 998:
            raise MessageError(f"headers.{name}", "is longer than 998 characters")
    return headers


def build_body(
    *,
    from_name: str,
    from_address: str,
    subject: str,
    html: str | None,
    text: str | None,
    headers: dict[str, str],
    date: datetime,
    utf8: bool,
) -> str:
    """Everything of the message but To and Message-ID, CRLF line ends, ready for DATA."""
    msg = EmailMessage(policy=SMTPUTF8 if utf8 else SMTP)
    msg["From"] = formataddr((from_name, from_address)) if from_name else from_address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date.astimezone(UTC))
    msg["MIME-Version"] = "1.0"
    for name, value in headers.items():
        msg[name] = value
    if text is not None:
        msg.set_content(text, subtype="plain", cte="quoted-printable")
        if html is not None:
            msg.add_alternative(html, subtype="html", cte="quoted-printable")
    else:
        msg.set_content(html or "", subtype="html", cte="quoted-printable")
    return msg.as_string()


def recipient_prefix(recipient: str, email_id: str, id_domain: str, signed_id: str) -> str:
    """The header lines of one recipient's copy; signed_id comes from correlation.token."""
    return (
        f"To: {recipient}\r\nMessage-ID: <{email_id}@{id_domain}>\r\n"
        f"X-Mailpulse-Id: {signed_id}\r\n"
    )
