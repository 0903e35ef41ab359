"""The JSON API of CONTRACT: send, and the email status queries."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from queue_engine import keys
from queue_engine.accounts import EmailType, Principal, api_users_of
from queue_engine.config import EngineConfig
from queue_engine.message import MessageError
from queue_engine.queries import EmailQueries
from queue_engine.submission import SendRequest, Submitter
from web.auth import authenticate
from web.body_limit import BODY_TIMEOUT_SECONDS
from web.email_filters import parse_email_query
from web.errors import ApiError
from web.ratelimit import RateLimits
from web.requests import Networks, client_ip, read_json


@dataclass(frozen=True, slots=True)
class ApiConfig:
    engine: EngineConfig
    trusted_proxies: Networks = ()
    metrics_token: str | None = None
    """Bearer token GET /metrics requires; None: none."""
    metrics_allow: Networks = ()
    """Networks GET /metrics answers; empty: any."""
    console_tick_seconds: float = 5.0
    """How often the console pushes a queue snapshot; tests and benchmarks go faster."""
    rate_limits: RateLimits = field(default_factory=RateLimits)
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS
    """A request body still arriving after this is answered 408 (web/body_limit.py)."""


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
        query = parse_email_query(request.query_params, principal)
        if query.filter is None:
            return JSONResponse({"items": [], "next_cursor": None})
        page = await self.queries.search(principal, query.filter, query.limit, query.cursor)
        return JSONResponse(
            {"items": [r.to_api() for r in page.items], "next_cursor": page.next_cursor}
        )
