"""The queue status page (SPEC Q1-Q5) and its live stream, `WS /ws/queues`.

Every frame is the same for all of an account's clients: the JSON numbers
carry all three windows and the page shows the one picked, and filters and
sorting happen in the browser. So the hub makes one tick per account (its
delta and its full state, web/console/queue_frames.py) and sends those bytes
to every socket (web/ws_hub.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from queue_engine import keys
from queue_engine.accounts import Principal
from queue_engine.queues import QueueStore
from queue_engine.snapshot import queue_domains, queue_statuses
from queue_engine.windows import WINDOWS
from web import csrf
from web.api_queues import owns_queue, visible_api_users
from web.console.base import ConsoleContext, principal
from web.console.queue_frames import QueueFrames, Shown, Snapshot
from web.session import Session
from web.ws_hub import DEFAULT_TICK_SECONDS, Feed, Hub, Tick

HISTORY_TICKS = 120
"""Chart points kept per account: ten minutes at the default tick."""

UNAUTHENTICATED = 4401
"""Close code after which the page goes to the login form instead of reconnecting."""


def _history(feed: Feed) -> deque[dict[str, Any]]:
    history: deque[dict[str, Any]] = feed.state.setdefault("history", deque(maxlen=HISTORY_TICKS))
    return history


class QueuePages:
    def __init__(self, ctx: ConsoleContext, tick_seconds: float = DEFAULT_TICK_SECONDS) -> None:
        self.ctx = ctx
        self.store = QueueStore(ctx.redis)
        self.frames = QueueFrames(ctx.templates.env)
        self.hub = Hub(self._tick, tick_seconds)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page, methods=["GET"], name="console_queues"),
            Route(
                "/queues/{api_user}/{domain}/resume",
                self.resume_form,
                methods=["POST"],
                name="console_queue_resume",
            ),
            WebSocketRoute("/ws/queues", self.stream, name="ws_queues"),
        ]

    async def snapshot(self, account: str) -> Snapshot:
        users = await visible_api_users(self.ctx.redis, Principal(account))
        now = int(time.time() * 1000)
        statuses = await queue_statuses(
            self.ctx.redis, await queue_domains(self.ctx.redis, users), now
        )
        return Snapshot([s for s in statuses if not s.idle], sorted(users), now)

    async def _tick(self, feed: Feed) -> Tick:
        snapshot = await self.snapshot(feed.account)
        tick, point, shown = self.frames.tick(snapshot, feed.state.get("shown", Shown()))
        feed.state["shown"] = shown
        _history(feed).append(point)
        return tick

    async def page(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        picked = request.query_params.get("window", "5")
        window = int(picked) if picked in {str(w) for w in WINDOWS} else WINDOWS[0]
        snapshot = await self.snapshot(session.account)
        return self.ctx.render(
            request,
            session,
            "queues.html",
            {
                "snap": snapshot,
                "rows": [self.frames.row(q, window, session.csrf) for q in snapshot.queues],
                "windows": WINDOWS,
                "window": window,
                "oob": False,
                "numbers": None,
                "nav": "queues",
            },
        )

    async def _resume(self, session: Session, api_user: str, domain: str) -> bool:
        domain = domain.lower()
        if not await owns_queue(self.ctx.redis, principal(session), api_user, domain):
            return False
        await self.store.resume(keys.queue_tag(api_user, domain), int(time.time() * 1000))
        assert session.account is not None
        await self.hub.refresh(session.account)
        return True

    async def resume_form(self, request: Request) -> Response:
        """Resume without the socket (no script, or a form posted by hand)."""
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        if await self.ctx.checked_form(request, session) is None:
            return self.ctx.refused(request, session)
        await self._resume(session, request.path_params["api_user"], request.path_params["domain"])
        return RedirectResponse("/", status_code=303)

    async def stream(self, websocket: WebSocket) -> None:
        if not csrf.same_origin(websocket):
            await websocket.close(code=1008)  # before accept: the handshake is refused (403)
            return
        await websocket.accept()
        session = self.ctx.sessions.read(websocket)
        if session is None or session.account is None:
            await websocket.close(code=UNAUTHENTICATED, reason="log in again")
            return
        async with self.hub.subscribe(session.account) as feed:
            history = [[p["t"], p["total"]] for p in _history(feed)]
            await websocket.send_text(json.dumps({"type": "history", "points": history}))
            sender = asyncio.create_task(self._send_frames(websocket, feed))
            try:
                while True:
                    await self._act(websocket, session, feed, await websocket.receive_text())
            except WebSocketDisconnect:
                pass
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                    await sender

    async def _send_frames(self, websocket: WebSocket, feed: Feed) -> None:
        version = 0
        while True:
            await feed.newer_than(version)
            version, frames = feed.version, feed.frames_after(version)
            for frame in frames:
                await websocket.send_text(frame)

    async def _act(self, websocket: WebSocket, session: Session, feed: Feed, raw: str) -> None:
        """Actions the page sends: Resume (htmx ws-send of the row's form), chart history."""
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("action") == "history":
            queue = message.get("queue")
            if not isinstance(queue, str):  # a list or an object is no key: it would crash
                return
            points = [[p["t"], p["q"][queue]] for p in _history(feed) if queue in p["q"]]
            reply = {"type": "queue_history", "queue": queue, "points": points}
            await websocket.send_text(json.dumps(reply))
        elif message.get("action") == "resume":
            # htmx's ws-send puts the page's hx-headers (the X-CSRF-Token) under HEADERS.
            headers = message.get("HEADERS")
            token = headers.get("X-CSRF-Token") if isinstance(headers, dict) else None
            api_user, domain = message.get("api_user"), message.get("domain")
            if not csrf.token_matches(session, token):
                await websocket.send_text(json.dumps({"type": "error", "message": "expired page"}))
            elif isinstance(api_user, str) and isinstance(domain, str):
                await self._resume(session, api_user, domain)
