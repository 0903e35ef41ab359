"""The exports page (SPEC X1-X3): start an export of a filter, watch it, download, retry.

Tasks are made and read through the same calls as `/v1/exports`, so the page and
the API refuse the same filters with the same words. While a task waits or runs,
the table refreshes itself every few seconds (htmx polling of a partial), so
progress moves without a reload.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from queue_engine.export_sources import SUPPORTED
from queue_engine.exports import ExportStatus, ExportStore, ExportType
from web.api_exports import ExportsApi
from web.console.base import ConsoleContext, principal
from web.email_filters import FILTERS
from web.errors import ApiError

TYPE_WORDS = {
    ExportType.EMAIL_STATUS: "Email status",
    ExportType.OPENS_CLICKS: "Opens and clicks",
}


class ExportPages:
    def __init__(self, ctx: ConsoleContext, exports: ExportsApi) -> None:
        self.ctx = ctx
        self.exports = exports
        self.store = ExportStore(ctx.redis)

    def routes(self) -> list[Route]:
        return [
            Route("/exports", self.page, methods=["GET"], name="console_exports"),
            Route("/exports", self.create, methods=["POST"], name="console_export_create"),
            Route("/exports/table", self.table, methods=["GET"], name="console_export_table"),
            Route(
                "/exports/{task_id}/retry",
                self.retry,
                methods=["POST"],
                name="console_export_retry",
            ),
            Route(
                "/exports/{task_id}/download",
                self.download,
                methods=["GET"],
                name="console_export_download",
            ),
        ]

    async def _context(self, request: Request) -> dict[str, Any]:
        session = self.ctx.session(request)
        assert session.account is not None
        tasks = await self.store.listing(principal(session), int(time.time() * 1000))
        return {
            "nav": "exports",
            "tasks": [t.to_api() for t in tasks],
            "active": any(t.status in (ExportStatus.PENDING, ExportStatus.RUNNING) for t in tasks),
            "type_words": TYPE_WORDS,
        }

    async def page(self, request: Request, error: ApiError | None = None) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        given = {k: v for k, v in request.query_params.items() if k in FILTERS and v.strip()}
        types = [t for t in ExportType if t in SUPPORTED]
        context = await self._context(request)
        return self.ctx.render(
            request,
            session,
            "exports.html",
            {**context, "filters": given, "types": types, "error": error},
        )

    async def table(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        return self.ctx.render(
            request, session, "partials/export_table.html", await self._context(request)
        )

    async def create(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        form = await self.ctx.checked_form(request, session)
        if form is None:
            return self.ctx.refused(request, session)
        filters = {k: str(v).strip() for k, v in form.items() if k in FILTERS and str(v).strip()}
        kind = str(form.get("export_type") or ExportType.EMAIL_STATUS.value)
        body = {"type": kind, "filter": filters}
        try:
            await self.exports.new_task(principal(session), body)
        except ApiError as exc:
            return await self.page(request, exc)
        return RedirectResponse("/exports", status_code=303)

    async def retry(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        if await self.ctx.checked_form(request, session) is None:
            return self.ctx.refused(request, session)
        now_ms = int(time.time() * 1000)
        task = await self.store.get(principal(session), request.path_params["task_id"], now_ms)
        if task is None:
            return self._gone(request, "This export does not exist, or it has expired.")
        await self.store.retry(task.task_id, now_ms)
        return RedirectResponse("/exports", status_code=303)

    async def download(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        now_ms = int(time.time() * 1000)
        task = await self.store.get(principal(session), request.path_params["task_id"], now_ms)
        if task is None:
            return self._gone(request, "This export does not exist, or it has expired.")
        try:
            return await self.exports.file_response(task)
        except ApiError as exc:
            return self._gone(request, exc.message, exc.status)

    def _gone(self, request: Request, message: str, status: int = 404) -> Response:
        return self.ctx.render(
            request,
            self.ctx.session(request),
            "error.html",
            {"title": "No such export", "message": message, "nav": "exports"},
            status=status,
        )
