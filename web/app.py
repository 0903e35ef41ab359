"""The Starlette application: API routes, health, OpenAPI, error shapes, headers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from queue_engine.suppression_input import MAX_UPLOAD_BYTES
from web.api import Api, ApiConfig
from web.api_exports import ExportsApi
from web.api_queues import QueuesApi
from web.api_suppressions import SuppressionsApi
from web.body_limit import BodyLimit
from web.console.routes import Console
from web.errors import ApiError, api_error_handler, error_response, http_error_handler
from web.metrics import MetricsRoute, report_websocket_clients
from web.openapi import SPEC
from web.ratelimit import RateLimiter
from web.tracking import TrackingRoutes

UPLOAD_BODY_BYTES = MAX_UPLOAD_BYTES + 65536
"""A block-list upload: its CSV, and room for a multipart envelope around it."""

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none';"
        b" form-action 'self'",
    ),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _storage_down(request: Request, exc: Exception) -> Response:
    return error_response(
        503,
        "storage_unavailable",
        "storage is unavailable; retry shortly",
        None,
        {"Retry-After": "5"},
    )


def create_web_app(config: ApiConfig, redis: Redis) -> Starlette:
    """The app over one Redis client (it connects lazily, inside the server's loop)."""
    api = Api(redis, config)
    limiter = RateLimiter(redis, config.rate_limits)
    queues = QueuesApi(redis)
    exports = ExportsApi(redis, config)
    console = Console(redis, config.engine.secret, exports, config.console_tick_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reporter = asyncio.create_task(
            report_websocket_clients(redis, lambda: console.hub.connected)
        )
        try:
            yield
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            await console.aclose()
            await redis.aclose()

    async def healthz(request: Request) -> Response:
        await redis.ping()
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(SPEC)

    async def storage_down(request: Request, exc: Exception) -> Response:
        return console.storage_unavailable(request) or await _storage_down(request, exc)

    routes = [
        # First: recipients' mail clients hit these most, and routes are tried in order.
        *TrackingRoutes(redis, config).routes(),
        *api.routes(),
        *queues.routes(),
        *exports.routes(),
        *SuppressionsApi(redis, config.engine.max_body_bytes).routes(),
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
        *MetricsRoute(redis, config).routes(),
        *console.routes(),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                BodyLimit,
                limit_for=lambda path: (
                    UPLOAD_BODY_BYTES
                    if path.endswith("/blocks/upload")
                    else config.engine.max_body_bytes
                ),
                timeout_seconds=config.body_timeout_seconds,
            ),
        ],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            RedisConnectionError: storage_down,
            RedisTimeoutError: storage_down,
        },
        lifespan=lifespan,
    )
    # What web.auth and the console's login read for rate limits and client IPs.
    app.state.limiter = limiter
    app.state.trusted_proxies = config.trusted_proxies
    return app
