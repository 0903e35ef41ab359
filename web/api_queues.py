"""Queue status and control (CONTRACT: `/v1/queues`): rates, pauses, Resume."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from queue_engine import keys
from queue_engine.accounts import Principal, api_users_of
from queue_engine.queues import QueueStore
from queue_engine.records import iso
from queue_engine.snapshot import QueueStatus, queue_domains, queue_statuses
from queue_engine.statuses import PauseReason
from queue_engine.windows import WINDOWS
from web.auth import authenticate
from web.errors import ApiError
from web.requests import read_json

MAX_MANUAL_PAUSE_SECONDS = 30 * 86400
DEFAULT_MANUAL_PAUSE_SECONDS = 7 * 86400


def queue_json(status: QueueStatus, window: int) -> dict[str, Any]:
    rates = status.rates[window]
    pause = status.pause if status.paused else None
    return {
        "api_user": status.api_user,
        "domain": status.domain,
        "status": "paused" if pause else "active",
        "pending": status.pending,
        "rates": {
            "inbound": round(rates.inbound, 3),
            "attempted": round(rates.attempted, 3),
            "outbound": round(rates.outbound, 3),
        },
        "pause": None
        if pause is None
        else {
            "reason": pause.reason.value,
            "since": iso(pause.since_ms),
            "next_outbound_at": iso(pause.until_ms),
            "mp_reply": pause.mp_reply or None,
            "stale": status.stale,
        },
    }


async def visible_api_users(redis: Redis, principal: Principal) -> set[str]:
    if principal.api_user:
        return {principal.api_user}
    return await api_users_of(redis, principal.account)


async def owns_queue(redis: Redis, principal: Principal, api_user: str, domain: str) -> bool:
    """The queue exists and the caller may act on it (the console's Resume checks the same)."""
    return api_user in await visible_api_users(redis, principal) and bool(
        await redis.sismember(keys.api_user_queues(api_user), domain)
    )


class QueuesApi:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.queues = QueueStore(redis)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/queues", self.list_queues, methods=["GET"], name="queues"),
            Route(
                "/v1/queues/{api_user}/{domain}/resume",
                self.resume,
                methods=["POST"],
                name="queue_resume",
            ),
            Route(
                "/v1/queues/{api_user}/{domain}/pause",
                self.pause,
                methods=["POST"],
                name="queue_pause",
            ),
        ]

    async def list_queues(self, request: Request) -> JSONResponse:
        principal = await authenticate(self.redis, request)
        q = request.query_params
        for name in q:
            if name not in {"window", "api_user", "domain", "include_idle"}:
                raise ApiError(400, "unknown parameter", field=name)
        window = q.get("window", "5")
        if window not in {str(w) for w in WINDOWS}:
            raise ApiError(400, "window must be 5, 15 or 30 (seconds)", field="window")
        users = await visible_api_users(self.redis, principal)
        if q.get("api_user"):
            users &= {q["api_user"]}
        queues = await queue_domains(self.redis, users)
        if q.get("domain"):
            queues = [(u, d) for u, d in queues if d == q["domain"].lower()]
        statuses = await queue_statuses(self.redis, queues, int(time.time() * 1000), (int(window),))
        if q.get("include_idle", "").lower() not in {"1", "true", "yes"}:
            statuses = [s for s in statuses if not s.idle]
        return JSONResponse({"queues": [queue_json(s, int(window)) for s in statuses]})

    async def _queue(self, request: Request) -> tuple[str, str]:
        principal = await authenticate(self.redis, request)
        api_user = request.path_params["api_user"]
        domain = request.path_params["domain"].lower()
        if not await owns_queue(self.redis, principal, api_user, domain):
            raise ApiError(404, "no such queue", field="domain")
        return api_user, domain

    async def _status(self, api_user: str, domain: str) -> dict[str, Any]:
        now = int(time.time() * 1000)
        [status] = await queue_statuses(self.redis, [(api_user, domain)], now, (WINDOWS[0],))
        return queue_json(status, WINDOWS[0])

    async def resume(self, request: Request) -> JSONResponse:
        api_user, domain = await self._queue(request)
        resumed = await self.queues.resume(
            keys.queue_tag(api_user, domain), int(time.time() * 1000)
        )
        return JSONResponse({"resumed": resumed, "queue": await self._status(api_user, domain)})

    async def pause(self, request: Request) -> JSONResponse:
        api_user, domain = await self._queue(request)
        body: Any = {}
        if int(request.headers.get("content-length") or 0) > 0:
            body = await read_json(request, 4096)
        if not isinstance(body, dict):
            raise ApiError(400, "must be a JSON object", field="body")
        seconds = body.get("seconds", DEFAULT_MANUAL_PAUSE_SECONDS)
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0 < seconds <= MAX_MANUAL_PAUSE_SECONDS
        ):
            raise ApiError(
                400,
                f"must be a number of seconds, 1 to {MAX_MANUAL_PAUSE_SECONDS}",
                field="seconds",
            )
        now = int(time.time() * 1000)
        await self.queues.pause(
            keys.queue_tag(api_user, domain),
            PauseReason.MANUAL,
            now,
            now + int(seconds * 1000),
            "paused by a person",
        )
        return JSONResponse({"queue": await self._status(api_user, domain)})
