"""Tying what comes back (DSN, ARF) to the email it is about, unforgeably.

Every outgoing email carries its id with an HMAC: in the VERP return path
(`bounce+<id>.<sig>@<return-path domain>`) and in an `X-Mailpulse-Id` header
that MPs return inside bounces and spam reports. A report whose signature does
not check out is ignored, so nobody can bounce or complain about another
sender's email by guessing an id.
"""

from __future__ import annotations

import base64
import hmac
import re

from queue_engine.records import is_email_id

HEADER = "X-Mailpulse-Id"
_TOKEN = re.compile(r"([0-9a-f]{28})\.([a-z2-7]{16})", re.IGNORECASE)


EMAIL = "mailpulse-email"
"""Purpose of the return-path and header signature; each kind of token has its own, so a
token made for one use (say, a bounce address) is worthless for another (an unsubscribe)."""


def mac(secret: bytes, purpose: str, data: bytes, size: int) -> bytes:
    """HMAC-SHA256 of data under one purpose, truncated to size bytes."""
    # The one-shot hmac.digest runs in OpenSSL: about twice as fast as hmac.new here.
    return hmac.digest(secret, purpose.encode() + b":" + data, "sha256")[:size]


def signature(secret: bytes, email_id: str, purpose: str = EMAIL) -> str:
    # Base32 lower case: a signature in an address local part survives MTAs changing case.
    return base64.b32encode(mac(secret, purpose, email_id.encode(), 10)).decode().lower()


def token(secret: bytes, email_id: str, purpose: str = EMAIL) -> str:
    """`<id>.<sig>`: what goes into the return path and the header."""
    return f"{email_id}.{signature(secret, email_id, purpose)}"


def return_path(signed: str, domain: str) -> str:
    """The VERP return path of an email's `token()`: the engine signs each email once
    for this and for its header."""
    return f"bounce+{signed}@{domain}"


def email_id_from(secret: bytes, text: str | None, purpose: str = EMAIL) -> str | None:
    """The email id of the first validly signed token in text (an address or a header)."""
    if not text:
        return None
    for match in _TOKEN.finditer(text):
        email_id, sig = match.group(1).lower(), match.group(2).lower()
        if is_email_id(email_id) and hmac.compare_digest(sig, signature(secret, email_id, purpose)):
            return email_id
    return None
