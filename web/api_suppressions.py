"""The suppression-list API of CONTRACT: list, add, delete, upload, check.

The bounce list is global, so it is read one address at a time: listing it
whole would show one sender the recipients of every other sender. Each
account's own lists (blocks, spam reports, unsubscribes, exemptions) are
listed with filters and a cursor. Writes answer per item; a bad item never
stops the good ones.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from queue_engine.accounts import Principal, api_users_of
from queue_engine.suppression import (
    EntryError,
    ListFilter,
    Origin,
    SuppressionList,
    Suppressions,
    normalise_target,
)
from queue_engine.suppression_input import (
    MAX_UPLOAD_BYTES,
    Item,
    ItemError,
    parse_block_csv,
    parse_items,
)
from web.auth import authenticate
from web.email_filters import int_param
from web.errors import ApiError
from web.requests import parse_time, read_json

REPEAT_COMPLAINT_WARNING = (
    "Deleting a spam report lets mail reach someone who reported it as spam; "
    "repeated complaints hurt the sender's reputation with the mailbox provider."
)

_WRITABLE = {
    "POST": (SuppressionList.BLOCKS, SuppressionList.UNSUBSCRIBES, SuppressionList.EXEMPTIONS),
    "DELETE": (
        SuppressionList.BLOCKS,
        SuppressionList.COMPLAINTS,
        SuppressionList.UNSUBSCRIBES,
        SuppressionList.EXEMPTIONS,
    ),
}


class SuppressionsApi:
    def __init__(self, redis: Redis, max_body_bytes: int) -> None:
        self.redis = redis
        self.max_body_bytes = max_body_bytes
        self.store = Suppressions(redis)

    def routes(self) -> list[Route]:
        routes = [
            Route("/v1/suppressions/check", self.check, methods=["GET"], name="sup_check"),
            Route("/v1/suppressions/blocks/upload", self.upload, methods=["POST"]),
        ]
        for kind in SuppressionList:
            methods = ["GET"] + [m for m, kinds in _WRITABLE.items() if kind in kinds]
            routes.append(
                Route(
                    f"/v1/suppressions/{kind.value}",
                    self._handler(kind),
                    methods=methods,
                    name=f"sup_{kind.value}",
                )
            )
        return routes

    def _handler(self, kind: SuppressionList) -> Any:
        async def handle(request: Request) -> JSONResponse:
            principal = await authenticate(self.redis, request)
            if request.method == "GET":
                return await self.list_entries(principal, kind, request)
            if request.method == "POST":
                return await self.add(principal, kind, request)
            return await self.delete(principal, kind, request)

        return handle

    async def list_entries(
        self, principal: Principal, kind: SuppressionList, request: Request
    ) -> JSONResponse:
        params = request.query_params
        allowed = {"address", "domain", "api_user", "start", "end", "limit", "cursor"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ApiError(400, "is not a filter of this list", field=unknown[0])
        if kind is SuppressionList.BOUNCES and not params.get("address"):
            raise ApiError(
                400,
                "the bounce list is shared by all accounts: look up one address at a time",
                field="address",
            )
        flt = await parse_list_filter(self.redis, principal, params)
        limit = int_param(params.get("limit", "100"), "limit", 1, 1000)
        cursor = params.get("cursor") or None
        if cursor is not None and not _valid_cursor(cursor):
            raise ApiError(400, "is not a cursor this API gave", field="cursor")
        account = None if kind is SuppressionList.BOUNCES else principal.account
        page = await self.store.page(account, kind, flt, cursor, limit)
        return JSONResponse(
            {"items": [e.to_api() for e in page.entries], "next_cursor": page.cursor}
        )

    async def add(
        self, principal: Principal, kind: SuppressionList, request: Request
    ) -> JSONResponse:
        body = await read_json(request, self.max_body_bytes)
        now = int(time.time() * 1000)
        try:
            good, bad = parse_items(
                body,
                own_api_user=principal.api_user,
                api_users=await api_users_of(self.redis, principal.account),
                now_ms=now,
                with_details=True,
            )
        except EntryError as exc:
            raise ApiError(400, str(exc), field=exc.field) from None
        return await self._write(principal, kind, good, bad, now)

    async def upload(self, request: Request) -> JSONResponse:
        principal = await authenticate(self.redis, request)
        data = await _upload_bytes(request)
        now = int(time.time() * 1000)
        try:
            good, bad = parse_block_csv(
                data,
                own_api_user=principal.api_user,
                api_users=await api_users_of(self.redis, principal.account),
                now_ms=now,
            )
        except EntryError as exc:
            raise ApiError(400, str(exc), field=exc.field) from None
        return await self._write(principal, SuppressionList.BLOCKS, good, bad, now, key="line")

    async def _write(
        self,
        principal: Principal,
        kind: SuppressionList,
        good: list[tuple[int, Item]],
        bad: list[ItemError],
        now: int,
        key: str = "index",
    ) -> JSONResponse:
        results: list[dict[str, Any]] = [_error(e, key) for e in bad]
        fresh = await self.store.add(
            principal.account,
            kind,
            [(i.target, i.api_user, i.expires_ms, i.reason) for _, i in good],
            Origin.API,
            now,
        )
        results += [
            {key: where, "status": "added" if new else "updated"}
            for (where, _), new in zip(good, fresh, strict=True)
        ]
        added = sum(fresh)
        results.sort(key=lambda r: int(r[key]))
        body = {
            "added": added,
            "updated": len(good) - added,
            "errors": len(bad),
            "results": results,
        }
        return JSONResponse(body, status_code=_status(len(good), len(bad)))

    async def delete(
        self, principal: Principal, kind: SuppressionList, request: Request
    ) -> JSONResponse:
        body = await read_json(request, self.max_body_bytes)
        try:
            good, bad = parse_items(
                body,
                own_api_user=principal.api_user,
                api_users=await api_users_of(self.redis, principal.account),
                now_ms=0,
                with_details=False,
            )
        except EntryError as exc:
            raise ApiError(400, str(exc), field=exc.field) from None
        removed = await self.store.remove(
            principal.account, kind, [(i.target, i.api_user) for _, i in good]
        )
        results = [_error(e, "index") for e in bad] + [
            {"index": where, "status": "removed" if gone else "not_found"}
            for (where, _), gone in zip(good, removed, strict=True)
        ]
        results.sort(key=lambda r: int(r["index"]))
        answer: dict[str, Any] = {
            "removed": sum(removed),
            "not_found": len(removed) - sum(removed),
            "errors": len(bad),
            "results": results,
        }
        if kind is SuppressionList.COMPLAINTS:
            answer["warning"] = REPEAT_COMPLAINT_WARNING
        return JSONResponse(answer, status_code=_status(len(good), len(bad)))

    async def check(self, request: Request) -> JSONResponse:
        principal = await authenticate(self.redis, request)
        raw = request.query_params.get("address")
        if not raw:
            raise ApiError(400, "is required", field="address")
        target = _target(raw, "address")
        api_users = (
            [principal.api_user]
            if principal.api_user
            else sorted(await api_users_of(self.redis, principal.account))
        )
        return JSONResponse(await self.store.check_address(principal.account, api_users, target))


async def parse_list_filter(
    redis: Redis, principal: Principal, params: Mapping[str, str], field_prefix: str = ""
) -> ListFilter:
    """The filters of a list (address, domain, api_user, start, end), for this API and
    for exports; the ApiError names the field at fault, after `field_prefix`."""
    address = _target(params.get("address"), field_prefix + "address")
    domain = _target(params.get("domain"), field_prefix + "domain")
    api_user = params.get("api_user") or ""
    if principal.api_user:
        if api_user and api_user != principal.api_user:
            raise ApiError(404, "no such API_USER in this account", field=field_prefix + "api_user")
        api_user = principal.api_user
    elif api_user and api_user not in await api_users_of(redis, principal.account):
        raise ApiError(404, "no such API_USER in this account", field=field_prefix + "api_user")
    start_field, end_field = field_prefix + "start", field_prefix + "end"
    start = parse_time(start_field, params["start"]) if params.get("start") else None
    end = parse_time(end_field, params["end"]) if params.get("end") else None
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "must be after start", field=end_field)
    return ListFilter(
        address=address[1:] if address.startswith("@") else address,
        domain=domain.lstrip("@"),
        api_user=api_user,
        include_unscoped=True,
        created_from_ms=start,
        created_before_ms=end,
    )


def _target(raw: str | None, field: str) -> str:
    if not raw:
        return ""
    try:
        return normalise_target(raw)
    except EntryError as exc:
        raise ApiError(400, str(exc), field=field) from None


def _valid_cursor(cursor: str) -> bool:
    bucket, sep, _ = cursor.partition(":")
    return bool(sep) and bucket.isdigit() and len(cursor) <= 400


def _error(error: ItemError, key: str) -> dict[str, Any]:
    return {
        key: error.where,
        "status": "error",
        "error": {"code": "bad_request", "message": error.message, "field": error.field},
    }


def _status(good: int, bad: int) -> int:
    """200 when every item went through, 207 when some did, 400 when none did."""
    if not bad:
        return 200
    return 207 if good else 400


async def _upload_bytes(request: Request) -> bytes:
    """The CSV as a multipart `file` field or as a text/csv body, size-capped either way."""
    too_big = ApiError(413, f"the upload is larger than {MAX_UPLOAD_BYTES} bytes", field="file")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_UPLOAD_BYTES + 65536:
        raise too_big
    if ctype == "multipart/form-data":
        async with request.form(max_files=1, max_fields=5, max_part_size=MAX_UPLOAD_BYTES) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "send the CSV as the multipart field file", field="file")
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
    elif ctype in ("text/csv", "text/plain"):
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise too_big
            chunks.append(chunk)
        data = b"".join(chunks)
    else:
        raise ApiError(415, "send text/csv or multipart/form-data with a file field", field="file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_big
    return data
