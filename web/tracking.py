"""Public tracking routes: the open pixel, tracked-link redirects, the unsubscribe page.

These are hit by recipients' mail clients, link scanners and bots, with no
credentials: anything that is not a genuine token is a 404 with no redirect,
and nothing here writes on a GET except an open or a click. Unsubscribing
takes a POST: RFC 8058 one-click from the mailbox provider, or the page's
form; a scanner that follows every link with GET unsubscribes nobody.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from queue_engine.records import iso
from queue_engine.suppression import UNSUBSCRIBE_WORDING, UnsubscribeReason
from queue_engine.tracking import (
    Unsubscriber,
    UnsubscribeTarget,
    read_click,
    read_open,
    read_unsubscribe,
)
from web.api import ApiConfig
from web.errors import ApiError
from web.requests import client_ip

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""A transparent 1x1 GIF (43 bytes)."""

NO_STORE = {"Cache-Control": "no-store, private"}
MAX_FORM_BYTES = 4096
PAGE_REASONS = [r for r in UnsubscribeReason if r is not UnsubscribeReason.NOT_GIVEN]
"""The four reasons of SPEC U2 the page offers."""

_TEMPLATES = Path(__file__).resolve().parent / "templates"
log = logging.getLogger(__name__)


class TrackingRoutes:
    def __init__(self, redis: Redis, config: ApiConfig) -> None:
        self.secret = config.engine.secret
        self.trusted_proxies = config.trusted_proxies
        self.unsubscriber = Unsubscriber(redis)
        self.events = self.unsubscriber.events
        self.templates = Jinja2Templates(directory=_TEMPLATES)

    def routes(self) -> list[Route]:
        return [
            Route("/t/o/{token}", self.opened, methods=["GET"], name="track_open"),
            Route("/t/c/{token}", self.clicked, methods=["GET"], name="track_click"),
            Route("/u/{token}", self.unsubscribe_page, methods=["GET"], name="unsubscribe"),
            Route("/u/{token}", self.unsubscribe, methods=["POST"], name="unsubscribe_post"),
        ]

    def _who(self, request: Request) -> tuple[str, str, str]:
        """(time, client IP, user agent) of an event."""
        ip = client_ip(request, self.trusted_proxies)
        return iso(int(time.time() * 1000)) or "", ip, request.headers.get("user-agent", "")

    async def opened(self, request: Request) -> Response:
        email_id = read_open(self.secret, request.path_params["token"])
        if email_id is None:
            raise ApiError(404, "no such tracking pixel", field="token")
        if request.method == "GET":  # a HEAD is a probe, not an open
            await _unless_down(self.events.opened(email_id, *self._who(request)))
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    async def clicked(self, request: Request) -> Response:
        found = read_click(self.secret, request.path_params["token"])
        if found is None:
            raise ApiError(404, "no such tracked link", field="token")
        email_id, url = found
        if request.method == "GET":
            time_, ip, user_agent = self._who(request)
            await _unless_down(self.events.clicked(email_id, url, time_, ip, user_agent))
        return RedirectResponse(url, status_code=302, headers=NO_STORE)

    def _page(
        self, request: Request, state: str, target: UnsubscribeTarget | None, status: int = 200
    ) -> Response:
        context: dict[str, Any] = {
            "state": state,
            "address": target.address if target else "",
            "reasons": [(r.value, UNSUBSCRIBE_WORDING[r]) for r in PAGE_REASONS],
        }
        return self.templates.TemplateResponse(
            request, "unsubscribe.html", context, status_code=status, headers=NO_STORE
        )

    async def unsubscribe_page(self, request: Request) -> Response:
        """The confirmation page: showing it changes nothing."""
        target = read_unsubscribe(self.secret, request.path_params["token"])
        if target is None:
            return self._page(request, "invalid", None, 404)
        return self._page(request, "form", target)

    async def unsubscribe(self, request: Request) -> Response:
        """RFC 8058 one-click (`List-Unsubscribe=One-Click`, reason not given) or the page's
        form with a reason. Repeating it changes nothing but the reason."""
        target = read_unsubscribe(self.secret, request.path_params["token"])
        if target is None:
            return self._page(request, "invalid", None, 404)
        reason = await _reason(request)
        await self.unsubscriber.unsubscribe(target, reason, int(time.time() * 1000))
        return self._page(request, "done", target)


async def _unless_down(recording: Awaitable[int]) -> None:
    """The recipient gets the pixel or the link even when the event cannot be stored."""
    try:
        await recording
    except RedisError as exc:
        log.warning("tracking: event not recorded, storage unavailable: %s", exc)


async def _reason(request: Request) -> UnsubscribeReason:
    """The reason picked on the page; anything else (one-click, a multipart body) gives none."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return UnsubscribeReason.NOT_GIVEN
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return UnsubscribeReason.NOT_GIVEN
    try:
        fields = dict(parse_qsl(body.decode("ascii"), max_num_fields=20))
    except ValueError:  # UnicodeDecodeError too: a form of ours is ASCII
        return UnsubscribeReason.NOT_GIVEN
    picked = fields.get("reason", "")
    return next((r for r in PAGE_REASONS if r.value == picked), UnsubscribeReason.NOT_GIVEN)
