"""Opens, clicks and unsubscribes: the signed tokens in an email and the events they record.

Every token is self-contained: the email id, what the token is for (its own
HMAC purpose) and, for a click, the target URL, signed with the secret key.
A click therefore redirects only to a URL that was in the email (no open
redirect, nothing to look up), and an unsubscribe link carries the account,
API_USER and address it is about, so it still works after the email's record
has expired. Tokens are base64url, safe in a URL path and an HTML attribute.

Events land on the email's own record hash (tracking_events.lua): exact
counts plus the latest `EVENTS_KEPT` events of each kind, so reading an email
reads one hash, memory per email is bounded, and the events expire with the
record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.correlation import email_id_from, mac, token
from queue_engine.message import MessageError
from queue_engine.records import CLICKS, OPENS, UNSUBSCRIBE, iso
from queue_engine.scripts import Batched
from queue_engine.suppression import Origin, Suppressions, UnsubscribeReason

OPEN = "mailpulse-open"
CLICK = "mailpulse-click"
UNSUBSCRIBE_LINK = "mailpulse-unsubscribe"
UNSUBSCRIBE_MAIL = "mailpulse-unsubscribe-mail"
"""The mailto address's token: short and lower case (an address local part is 64 characters
at most, and MTAs may change its case), so it is the correlation token under its own purpose."""

MAX_URL_BYTES = 2048
"""Longer links are left as they are: untracked, never truncated."""
MAX_TOKEN_CHARS = 4096
"""A token in a request longer than any we make is refused before any decoding."""
MAX_USER_AGENT = 512
EVENTS_KEPT = 20
WRITE_BATCH = 500

_ID_BYTES = 14
_SIG_BYTES = 12
_DATA = _ID_BYTES + _SIG_BYTES
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_EVENTS_LUA = (Path(__file__).parent / "tracking_events.lua").read_text()


@dataclass(frozen=True, slots=True)
class TrackingOptions:
    """What a send call asks for; by default opens and HTML links are tracked."""

    opens: bool = True
    clicks: bool = True
    text_links: bool = False
    unsubscribe: bool = False
    """List-Unsubscribe on a transactional email too (marketing email always has it)."""

    @classmethod
    def parse(cls, tracking: object, unsubscribe: object) -> TrackingOptions:
        flags: dict[str, bool] = {}
        if tracking is not None:
            if not isinstance(tracking, dict):
                raise MessageError("tracking", "must be an object of opens, clicks, text_links")
            for name, value in tracking.items():
                if name not in ("opens", "clicks", "text_links"):
                    raise MessageError(f"tracking.{name}", "is not a tracking option")
                if not isinstance(value, bool):
                    raise MessageError(f"tracking.{name}", "must be true or false")
                flags[name] = value
        if unsubscribe is not None and not isinstance(unsubscribe, bool):
            raise MessageError("unsubscribe", "must be true or false")
        return cls(**flags, unsubscribe=bool(unsubscribe))


def check_base_url(raw: str) -> str:
    """A tracking base URL: http(s)://host[:port][/path], no query; without a trailing /."""
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or any(c.isspace() or c in "\"'<>" for c in url):
        raise ValueError("must have no query, fragment, spaces or quotes")
    return url


def _seal(secret: bytes, purpose: str, email_id: str, data: bytes = b"") -> str:
    ident = bytes.fromhex(email_id)
    raw = ident + mac(secret, purpose, ident + data, _SIG_BYTES) + data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unseal(secret: bytes, purpose: str, sealed: str) -> tuple[str, bytes] | None:
    """(email id, data) of a genuine token, None for anything else, without raising."""
    if len(sealed) > MAX_TOKEN_CHARS or not _BASE64URL.fullmatch(sealed):
        return None
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except (binascii.Error, ValueError):
        return None
    ident, sig, data = raw[:_ID_BYTES], raw[_ID_BYTES:_DATA], raw[_DATA:]
    if len(sig) != _SIG_BYTES or not hmac.compare_digest(
        sig, mac(secret, purpose, ident + data, _SIG_BYTES)
    ):
        return None
    return ident.hex(), data


def open_token(secret: bytes, email_id: str) -> str:
    return _seal(secret, OPEN, email_id)


def click_token(secret: bytes, email_id: str, url: str) -> str:
    return _seal(secret, CLICK, email_id, url.encode())


def unsubscribe_token(
    secret: bytes, email_id: str, account: str, api_user: str, address: str
) -> str:
    return _seal(secret, UNSUBSCRIBE_LINK, email_id, f"{account}\n{api_user}\n{address}".encode())


def unsubscribe_mailto(secret: bytes, email_id: str, domain: str) -> str:
    return f"unsubscribe+{token(secret, email_id, UNSUBSCRIBE_MAIL)}@{domain}"


def read_open(secret: bytes, sealed: str) -> str | None:
    """The email id of a genuine open token."""
    found = _unseal(secret, OPEN, sealed)
    return None if found is None or found[1] else found[0]


def read_click(secret: bytes, sealed: str) -> tuple[str, str] | None:
    """(email id, target URL) of a genuine click token."""
    found = _unseal(secret, CLICK, sealed)
    if found is None:
        return None
    try:
        url = found[1].decode()
    except UnicodeDecodeError:
        return None
    # Only http(s) links are ever sealed; this holds even against a leaked key.
    return (found[0], url) if url.lower().startswith(("http://", "https://")) else None


@dataclass(frozen=True, slots=True)
class UnsubscribeTarget:
    email_id: str
    account: str
    api_user: str
    address: str


def read_unsubscribe(secret: bytes, sealed: str) -> UnsubscribeTarget | None:
    found = _unseal(secret, UNSUBSCRIBE_LINK, sealed)
    if found is None:
        return None
    try:
        account, api_user, address = found[1].decode().split("\n")
    except ValueError:  # UnicodeDecodeError included
        return None
    return UnsubscribeTarget(found[0], account, api_user, address)


@dataclass(slots=True)
class _Queued:
    email_id: str
    field: str
    line: str
    keep: int
    done: asyncio.Future[int]


class TrackingEvents:
    """Opens, clicks and unsubscribes recorded on the email records.

    Writes are group-committed: the events that arrive while one write is in
    flight go together in the next, as one pipeline. A busy web process so pays
    one Redis round trip per batch instead of one per request, and each caller
    still returns only once its own event is stored.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = Batched(redis, _EVENTS_LUA)
        self._queue: list[_Queued] = []
        self._writer: asyncio.Task[None] | None = None

    async def _add(self, email_id: str, field: str, event: dict[str, Any], keep: int) -> int:
        line = json.dumps(event, separators=(",", ":"))  # never a raw newline: the separator
        queued = _Queued(email_id, field, line, keep, asyncio.get_running_loop().create_future())
        self._queue.append(queued)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())
        return await queued.done

    async def _write_queued(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:WRITE_BATCH], self._queue[WRITE_BATCH:]
                try:
                    results = await self._write(batch)
                except Exception as exc:  # each caller gets the error; the writer goes on
                    results = [exc] * len(batch)
                for q, result in zip(batch, results, strict=True):
                    if q.done.done():  # a caller that went away
                        continue
                    if isinstance(result, Exception):
                        q.done.set_exception(result)
                    else:
                        q.done.set_result(int(result))
        finally:
            self._writer = None

    async def _write(self, batch: list[_Queued]) -> list[Any]:
        """One round trip (scripts.py), whatever the batch."""
        return await self._script.run(
            [
                ([keys.email(q.email_id)], [q.field, f"{q.field}_count", q.line, str(q.keep)])
                for q in batch
            ]
        )

    async def opened(self, email_id: str, time: str, ip: str, user_agent: str) -> int:
        """The email's open count now; 0 when its record is gone (nothing is written)."""
        event = {"time": time, "ip": ip, "user_agent": user_agent[:MAX_USER_AGENT]}
        return await self._add(email_id, OPENS, event, EVENTS_KEPT)

    async def clicked(self, email_id: str, url: str, time: str, ip: str, user_agent: str) -> int:
        event = {"time": time, "url": url, "ip": ip, "user_agent": user_agent[:MAX_USER_AGENT]}
        return await self._add(email_id, CLICKS, event, EVENTS_KEPT)

    async def unsubscribed(self, email_id: str, time: str, reason: str) -> None:
        """Noted on the email that caused it (the list entry itself is suppression.py's)."""
        await self._add(email_id, UNSUBSCRIBE, {"time": time, "reason": reason}, 1)


class Unsubscriber:
    """A recipient's unsubscribe, by the page, one-click POST or mail to the mailto address:
    the address goes on the unsubscribe list, and the email that caused it says so."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.suppressions = Suppressions(redis)
        self.events = TrackingEvents(redis)

    async def unsubscribe(
        self, target: UnsubscribeTarget, reason: UnsubscribeReason, now_ms: int
    ) -> bool:
        """False when the address was on the list already (only the reason may change)."""
        added = await self.suppressions.unsubscribe(
            target.account, target.api_user, target.address, reason, Origin.RECIPIENT, now_ms
        )
        if added:
            await self.events.unsubscribed(target.email_id, iso(now_ms) or "", reason.value)
        return added

    async def by_mail(self, secret: bytes, rcpt_to: str, now_ms: int) -> str | None:
        """The email id when rcpt_to holds a genuine mailto token (RFC 2369), which counts
        as a one-click; None for any other address. An expired email unsubscribes no one:
        unlike the link's, this token is too short to carry the address."""
        email_id = email_id_from(secret, rcpt_to, UNSUBSCRIBE_MAIL)
        if email_id is None:
            return None
        account, api_user, address = await self.redis.hmget(
            keys.email(email_id), ["account", "api_user", "recipient"]
        )
        if account and api_user and address:
            target = UnsubscribeTarget(email_id, account, api_user, address)
            await self.unsubscribe(target, UnsubscribeReason.NOT_GIVEN, now_ms)
        return email_id
