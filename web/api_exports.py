"""Offline exports (CONTRACT `/v1/exports`, SPEC X1-X3): create, watch, retry, download.

The engine's export workers write the files (queue_engine/export_worker.py);
this process only reads them, from the same exports directory.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import anyio
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from queue_engine.accounts import Principal
from queue_engine.export_sources import SUPPORTED
from queue_engine.exports import (
    ExportLimitError,
    ExportStatus,
    ExportStore,
    ExportTask,
    ExportType,
)
from web.api import ApiConfig
from web.api_suppressions import parse_list_filter
from web.auth import authenticate
from web.email_filters import FILTERS, parse_email_filter
from web.errors import ApiError
from web.requests import read_json

MAX_BODY_BYTES = 16 * 1024
EMAIL_TYPES = (ExportType.EMAIL_STATUS, ExportType.OPENS_CLICKS)
"""Types whose rows are chosen by the filters of /v1/emails; the others are suppression
lists, filtered as /v1/suppressions/<list> is."""
LIST_FILTERS = ("address", "domain", "api_user", "start", "end")


def task_json(task: ExportTask, request: Request) -> dict[str, Any]:
    """The task as the API shows it, with its download link once there is a file."""
    url = None
    if task.status is ExportStatus.SUCCESS:
        url = request.url_for("export_download", task_id=task.task_id).path
    return {**task.to_api(), "download_url": url}


class ExportsApi:
    def __init__(self, redis: Redis, config: ApiConfig) -> None:
        self.redis = redis
        self.config = config
        self.store = ExportStore(redis)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/exports", self.create, methods=["POST"], name="export_create"),
            Route("/v1/exports", self.list_exports, methods=["GET"], name="exports"),
            Route("/v1/exports/{task_id}", self.get_export, methods=["GET"], name="export"),
            Route("/v1/exports/{task_id}/retry", self.retry, methods=["POST"], name="export_retry"),
            Route(
                "/v1/exports/{task_id}/download",
                self.download,
                methods=["GET"],
                name="export_download",
            ),
        ]

    async def create(self, request: Request) -> JSONResponse:
        principal = await authenticate(self.redis, request)
        body = await read_json(request, MAX_BODY_BYTES)
        task = await self.new_task(principal, body)
        location = request.url_for("export", task_id=task.task_id).path
        return JSONResponse(
            task_json(task, request), status_code=202, headers={"Location": location}
        )

    async def new_task(self, principal: Principal, body: object) -> ExportTask:
        """A task from a request body `{"type"?, "filter"?}`; ApiError names what is wrong.
        The console creates its tasks through here too."""
        if self.config.engine.exports_dir is None:
            raise ApiError(503, "exports are not enabled on this server", code="unavailable")
        if not isinstance(body, dict):
            raise ApiError(400, "must be a JSON object", field="body")
        for name in body:
            if name not in ("type", "filter"):
                raise ApiError(400, "is not a field of an export request", field=name)
        export_type = _export_type(body.get("type", ExportType.EMAIL_STATUS.value))
        now_ms = int(time.time() * 1000)
        params = _filter_params(body.get("filter"), export_type)
        if export_type in EMAIL_TYPES:
            task_filter = self._email_filter(params, principal, now_ms)
        else:
            flt = await parse_list_filter(self.redis, principal, params, field_prefix="filter.")
            task_filter = {
                "address": flt.address,
                "domain": flt.domain,
                "api_user": flt.api_user,
                "start_ms": flt.created_from_ms,
                "end_ms": flt.created_before_ms,
            }
            task_filter = {k: v for k, v in task_filter.items() if v}
        try:
            return await self.store.create(principal, export_type, task_filter, now_ms)
        except ExportLimitError as exc:
            raise ApiError(429, str(exc), code="too_many_exports") from None

    def _email_filter(
        self, params: dict[str, str], principal: Principal, now_ms: int
    ) -> dict[str, Any]:
        """The S4 filters of /v1/emails, over any period within the data's retention."""
        retention_ms = self.config.engine.retention_days * 86_400_000
        f = parse_email_filter(
            params,
            principal,
            max_period_ms=None,
            earliest_ms=now_ms - retention_ms,
            field_prefix="filter.",
        )
        if f is None:
            raise ApiError(
                400, "an API_USER key exports only its own emails", field="filter.api_user"
            )
        return {k: v for k, v in dataclasses.asdict(f).items() if v is not None}

    async def list_exports(self, request: Request) -> JSONResponse:
        principal = await authenticate(self.redis, request)
        tasks = await self.store.listing(principal, int(time.time() * 1000))
        return JSONResponse({"items": [task_json(t, request) for t in tasks]})

    async def _task(self, request: Request) -> tuple[Principal, ExportTask]:
        principal = await authenticate(self.redis, request)
        task_id = request.path_params["task_id"]
        task = await self.store.get(principal, task_id, int(time.time() * 1000))
        if task is None:
            raise ApiError(404, "no such export", field="task_id")
        return principal, task

    async def get_export(self, request: Request) -> JSONResponse:
        _, task = await self._task(request)
        return JSONResponse(task_json(task, request))

    async def retry(self, request: Request) -> JSONResponse:
        principal, task = await self._task(request)
        now_ms = int(time.time() * 1000)
        if not await self.store.retry(task.task_id, now_ms):
            raise ApiError(
                409,
                f"only a failed export can be retried; this one is {task.status.value}",
                field="task_id",
                code="conflict",
            )
        retried = await self.store.get(principal, task.task_id, now_ms)
        assert retried is not None
        return JSONResponse(task_json(retried, request), status_code=202)

    async def download(self, request: Request) -> Response:
        _, task = await self._task(request)
        return await self.file_response(task)

    async def file_response(self, task: ExportTask) -> Response:
        """The task's file, streamed; ApiError when it has none (the console shares this)."""
        if task.status is not ExportStatus.SUCCESS:
            raise ApiError(
                409,
                f"the export has no file: it is {task.status.value}",
                field="task_id",
                code="conflict",
            )
        directory = self.config.engine.exports_dir
        path = directory / task.file_name if directory and task.file_name else None
        try:
            stat = await anyio.Path(path).stat() if path else None
        except FileNotFoundError:
            stat = None
        if path is None or stat is None:
            raise ApiError(404, "the export's file is gone", field="task_id")
        return FileResponse(
            path,
            stat_result=stat,
            media_type="application/gzip",
            filename=f"mailpulse-{task.type.value}-{task.task_id}.csv.gz",
        )


def _filter_params(raw: object, export_type: ExportType) -> dict[str, str]:
    """The filter object's values, each a string as in the query of the matching listing."""
    names = FILTERS if export_type in EMAIL_TYPES else LIST_FILTERS
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ApiError(400, f"must be an object of filters: {', '.join(names)}", field="filter")
    for name, value in raw.items():
        if name not in names:
            raise ApiError(400, "unknown filter", field=f"filter.{name}")
        if not isinstance(value, str | None):
            raise ApiError(400, "must be a string", field=f"filter.{name}")
    return {name: value for name, value in raw.items() if value is not None}


def _export_type(raw: object) -> ExportType:
    names = ", ".join(t.value for t in ExportType)
    if not isinstance(raw, str) or raw not in set(ExportType):
        raise ApiError(400, f"must be one of {names}", field="type")
    export_type = ExportType(raw)
    if export_type not in SUPPORTED:
        raise ApiError(
            400,
            "the bounce list is shared by all accounts and is not exported: look up one"
            " address at a time (GET /v1/suppressions/bounces?address=)",
            field="type",
        )
    return export_type
