"""The status record of one (email, recipient) and its idempotent transitions.

Records are Redis hashes of strings. A transition names the status and the
attempt count it expects to find, so a redelivered batch or a second worker
applying the same outcome changes nothing the second time (transition.lua).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from queue_engine.statuses import Status

TRANSITION_LUA = (Path(__file__).parent / "transition.lua").read_text()

DELIVERY_LOG_LIMIT = 20

_DEFAULTS = {"log": ("[]",), "billable": ("0",), "attempts": ("0",), "connected": ("0",)}
"""Attempts kept per record: enough to explain a retry history, bounded in memory."""

OPENS = "opens"
CLICKS = "clicks"
UNSUBSCRIBE = "unsubscribe"
"""Hash fields of the tracking events (tracking.py): JSON objects one per line, and the
exact count of each in `<field>_count`."""


def new_email_id(request_ms: int) -> str:
    """Request time in fixed-width hex then randomness: ids sort by time in ZRANGEBYLEX."""
    return f"{request_ms:012x}{secrets.token_hex(8)}"


def is_email_id(value: str) -> bool:
    return len(value) == 28 and all(c in "0123456789abcdef" for c in value)


def id_time_ms(email_id: str) -> int:
    return int(email_id[:12], 16)


def parse_iso_ms(raw: str) -> int:
    """ISO 8601 (a date, or a time with an offset; naive means UTC) → epoch ms; the
    inverse of `iso`. Raises ValueError."""
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(slots=True)
class EmailRecord:
    email_id: str
    account: str
    api_user: str
    recipient: str
    domain: str
    type: str
    tag: str
    message_id: str
    sender: str
    status: Status
    reason: str
    request_ms: int
    request_ip: str
    send_ms: int | None = None
    sending_ip: str = ""
    mp_reply: str = ""
    delivery_log: list[dict[str, Any]] = field(default_factory=list)
    billable: bool = False
    attempts: int = 0
    connected: bool = False
    complaint: dict[str, Any] | None = None
    """The latest spam report (ARF) about this email, as feedback.py records it."""
    opens: list[dict[str, Any]] = field(default_factory=list)
    clicks: list[dict[str, Any]] = field(default_factory=list)
    open_count: int = 0
    click_count: int = 0
    unsubscribe: dict[str, Any] | None = None

    def to_hash(self) -> dict[str, str]:
        """Only fields with a value: a new record's defaults cost no bytes in Redis."""
        full = {
            "account": self.account,
            "api_user": self.api_user,
            "recipient": self.recipient,
            "domain": self.domain,
            "type": self.type,
            "tag": self.tag,
            "mid": self.message_id,
            "sender": self.sender,
            "status": self.status.value,
            "reason": self.reason,
            "request_ms": str(self.request_ms),
            "request_ip": self.request_ip,
            "send_ms": "" if self.send_ms is None else str(self.send_ms),
            "sending_ip": self.sending_ip,
            "mp_reply": self.mp_reply,
            "log": json.dumps(self.delivery_log, separators=(",", ":")),
            "billable": "1" if self.billable else "0",
            "attempts": str(self.attempts),
            "connected": "1" if self.connected else "0",
        }
        return {k: v for k, v in full.items() if v not in _DEFAULTS.get(k, ("",))}

    @classmethod
    def from_hash(cls, email_id: str, h: dict[str, str]) -> EmailRecord:
        return cls(
            email_id=email_id,
            account=h["account"],
            api_user=h["api_user"],
            recipient=h["recipient"],
            domain=h["domain"],
            type=h["type"],
            tag=h.get("tag", ""),
            message_id=h.get("mid", ""),
            sender=h.get("sender", ""),
            status=Status(h["status"]),
            reason=h.get("reason", ""),
            request_ms=int(h["request_ms"]),
            request_ip=h.get("request_ip", ""),
            send_ms=int(h["send_ms"]) if h.get("send_ms") else None,
            sending_ip=h.get("sending_ip", ""),
            mp_reply=h.get("mp_reply", ""),
            delivery_log=json.loads(h.get("log") or "[]"),
            billable=h.get("billable") == "1",
            attempts=int(h.get("attempts") or 0),
            connected=h.get("connected") == "1",
            complaint=json.loads(h["complaint"]) if h.get("complaint") else None,
            opens=_events(h.get(OPENS)),
            clicks=_events(h.get(CLICKS)),
            open_count=int(h.get(f"{OPENS}_count") or 0),
            click_count=int(h.get(f"{CLICKS}_count") or 0),
            unsubscribe=next(iter(_events(h.get(UNSUBSCRIBE))), None),
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "email_id": self.email_id,
            "api_user": self.api_user,
            "recipient": self.recipient,
            "type": self.type,
            "tag": self.tag or None,
            "status": self.status.value,
            "reason": self.reason or None,
            "request_time": iso(self.request_ms),
            "request_ip": self.request_ip,
            "send_time": iso(self.send_ms),
            "sending_ip": self.sending_ip or None,
            "mp_reply": self.mp_reply or None,
            "delivery_log": self.delivery_log,
            "billable": self.billable,
            "attempts": self.attempts,
            "opens": self.opens,
            "clicks": self.clicks,
            "open_count": self.open_count,
            "click_count": self.click_count,
            "complaint": self.complaint,
            "unsubscribe": self.unsubscribe,
        }


def _events(lines: str | None) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines.split("\n")] if lines else []
