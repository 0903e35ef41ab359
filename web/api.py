"""The JSON API of CONTRACT: send, and the email status queries."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from queue_engine import keys
from queue_engine.accounts import EmailType, Principal, api_users_of
from queue_engine.config import EngineConfig
from queue_engine.message import MessageError
from queue_engine.queries import MAX_PERIOD_MS, EmailFilter, EmailQueries
from queue_engine.records import is_email_id
from queue_engine.statuses import REASONS, Status
from queue_engine.submission import SendRequest, Submitter
from web.auth import authenticate
from web.errors import ApiError
from web.requests import Networks, client_ip, parse_time, read_json

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ApiConfig:
    engine: EngineConfig
    trusted_proxies: Networks = ()


class Api:
    """Request handlers bound to one Redis connection pool and configuration."""

    def __init__(self, redis: Redis, config: ApiConfig) -> None:
        self.redis = redis
        self.config = config
        self.submitter = Submitter(redis, config.engine)
        self.queries = EmailQueries(redis)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/mail/send", self.send, methods=["POST"], name="send"),
            Route("/v1/emails", self.list_emails, methods=["GET"], name="emails"),
            Route("/v1/emails/{email_id}", self.get_email, methods=["GET"], name="email"),
        ]

    async def send(self, request: Request) -> JSONResponse:
        principal = await authenticate(self.redis, request)
        body = await read_json(request, self.config.engine.max_body_bytes)
        principal = await self._sending_principal(principal, body)
        try:
            send = SendRequest.parse(body)
        except MessageError as exc:  # SubmissionError, and check_headers' own MessageError
            raise ApiError(400, str(exc), field=exc.field) from None
        ids = await self.submitter.submit(
            principal,
            send,
            client_ip(request, self.config.trusted_proxies),
            int(time.time() * 1000),
        )
        return JSONResponse({"email_ids": ids}, status_code=202)

    async def _sending_principal(self, principal: Principal, body: object) -> Principal:
        """An account key sends as one of its API_USERs, named in the body."""
        if principal.api_user:
            return principal
        name = body.get("api_user") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise ApiError(
                400, "sending with an account key needs the api_user field", field="api_user"
            )
        if name not in await api_users_of(self.redis, principal.account):
            raise ApiError(400, f"API_USER {name!r} is not in this account", field="api_user")
        email_type = await self.redis.hget(keys.api_user(name), "type")
        return Principal(principal.account, name, EmailType(email_type))

    async def get_email(self, request: Request) -> JSONResponse:
        principal = await authenticate(self.redis, request)
        record = await self.queries.get(principal, request.path_params["email_id"])
        if record is None:
            raise ApiError(404, "no such email", field="email_id")
        return JSONResponse(record.to_api())

    async def list_emails(self, request: Request) -> JSONResponse:
        principal = await authenticate(self.redis, request)
        q = request.query_params
        known = {
            "address",
            "type",
            "tag",
            "api_user",
            "status",
            "reason",
            "start",
            "end",
            "limit",
            "cursor",
        }
        for name in q:
            if name not in known:
                raise ApiError(400, "unknown filter", field=name)
        end = parse_time("end", q["end"]) if "end" in q else int(time.time() * 1000)
        start = parse_time("start", q["start"]) if "start" in q else end - MAX_PERIOD_MS
        if start > end:
            raise ApiError(400, "start is after end", field="start")
        if end - start > MAX_PERIOD_MS:
            raise ApiError(400, "a query covers at most 30 days (end - start)", field="end")
        limit = _int_param(q.get("limit", "100"), "limit", 1, MAX_PAGE)
        cursor = q.get("cursor") or None
        if cursor is not None and not is_email_id(cursor):
            raise ApiError(400, "not a cursor from a previous page", field="cursor")
        status = q.get("status") or None
        if status is not None and status not in set(Status):
            raise ApiError(400, f"status must be one of {', '.join(Status)}", field="status")
        reason = q.get("reason") or None
        if reason is not None:
            allowed = REASONS[Status(status)] if status else set().union(*REASONS.values())
            if reason not in allowed:
                raise ApiError(
                    400, f"reason {reason!r} does not go with this status", field="reason"
                )
        email_type = q.get("type") or None
        if email_type is not None and email_type not in set(EmailType):
            raise ApiError(400, "type must be transactional or marketing", field="type")
        api_user = q.get("api_user") or None
        if principal.api_user:
            if api_user not in (None, principal.api_user):
                return JSONResponse({"items": [], "next_cursor": None})
            api_user = principal.api_user
        f = EmailFilter(
            start_ms=start,
            end_ms=end,
            address=(q.get("address") or "").strip().lower() or None,
            type=email_type,
            tag=q.get("tag") or None,
            api_user=api_user,
            status=status,
            reason=reason,
        )
        page = await self.queries.search(principal, f, limit, cursor)
        return JSONResponse(
            {"items": [r.to_api() for r in page.items], "next_cursor": page.next_cursor}
        )


def _int_param(raw: str, name: str, low: int, high: int) -> int:
    # isdigit() alone admits '²' and 5000-digit strings, which int() refuses (a 500).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high:
        raise ApiError(400, f"must be an integer from {low} to {high}", field=name)
    return int(raw)
