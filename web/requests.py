"""Reading what callers send: bounded JSON bodies, the client IP, query parameters."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

from queue_engine.records import parse_iso_ms
from web.errors import ApiError

MAX_JSON_DEPTH = 32

Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


async def read_json(request: Request, max_bytes: int) -> Any:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "the body must be application/json", field="body")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise ApiError(413, f"the body is larger than {max_bytes} bytes", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"the body is larger than {max_bytes} bytes", field="body")
        chunks.append(chunk)
    try:
        value = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", field="body") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels", field="body")
    try:  # a \ud800 escape is valid JSON but no Unicode text: Redis and SMTP cannot take it
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ApiError(400, "the body has an unpaired surrogate escape", field="body") from None
    return value


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def client_ip(request: Request, trusted_proxies: Networks) -> str:
    """The caller's IP; X-Forwarded-For is believed only from a trusted proxy."""
    peer = request.client.host if request.client else ""
    if not trusted_proxies:
        return peer  # the common case, on every tracking hit: no address parsing
    try:
        hop = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    forwarded = [
        h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()
    ]
    # Walk back from the nearest hop while it is one of ours.
    while forwarded and any(hop in net for net in trusted_proxies):
        try:
            hop = ipaddress.ip_address(forwarded.pop())
        except ValueError:
            break
    return str(hop)


def parse_time(name: str, raw: str) -> int:
    """ISO 8601 (a date, or a time with offset; naive means UTC) → epoch ms."""
    try:
        return parse_iso_ms(raw)
    except ValueError:
        raise ApiError(400, f"{raw!r} is not an ISO 8601 time", field=name) from None
