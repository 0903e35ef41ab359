"""The console's routes and shared parts, mounted by `web.app.create_web_app`."""

from __future__ import annotations

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from web.api_exports import ExportsApi
from web.console.base import ConsoleContext
from web.console.emails import EmailPages
from web.console.exports import ExportPages
from web.console.login import LoginPages
from web.console.queues import QueuePages
from web.console.suppressions import SuppressionPages
from web.console.templating import STATIC, templates
from web.session import SessionCodec
from web.ws_hub import DEFAULT_TICK_SECONDS, Hub


class Console:
    def __init__(
        self,
        redis: Redis,
        secret: bytes,
        exports: ExportsApi,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
    ) -> None:
        self.ctx = ConsoleContext(redis, SessionCodec(secret), templates())
        self.exports = ExportPages(self.ctx, exports)
        self.queues = QueuePages(self.ctx, tick_seconds)
        self.login = LoginPages(self.ctx)
        self.emails = EmailPages(self.ctx)
        self.suppressions = SuppressionPages(self.ctx)

    @property
    def hub(self) -> Hub:
        return self.queues.hub

    def routes(self) -> list[BaseRoute]:
        return [
            *self.login.routes(),
            *self.queues.routes(),
            *self.emails.routes(),
            *self.suppressions.routes(),
            *self.exports.routes(),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]

    def storage_unavailable(self, request: Request) -> Response | None:
        """An HTML page for a browser on a console page; None leaves it to the API's JSON."""
        if request.url.path.startswith("/v1/") or "text/html" not in request.headers.get(
            "accept", ""
        ):
            return None
        response = self.ctx.render(
            request,
            self.ctx.session(request),
            "error.html",
            {
                "title": "Storage unavailable",
                "message": "mailpulse cannot reach its Redis right now. Nothing is lost: "
                "this page works again as soon as Redis is back. Retry in a few seconds.",
            },
            status=503,
        )
        response.headers["Retry-After"] = "5"
        return response

    async def aclose(self) -> None:
        await self.hub.aclose()
