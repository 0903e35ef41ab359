"""The email status pages (SPEC S1, S4, O1): filtered list and one email's story."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from queue_engine.accounts import EmailType
from queue_engine.exports import ExportType
from queue_engine.queries import EmailQueries
from queue_engine.statuses import REASONS, Status
from web.api_queues import visible_api_users
from web.console.base import ConsoleContext, principal
from web.email_filters import FILTERS, parse_email_query
from web.errors import ApiError

PAGE_SIZE = 50


class EmailPages:
    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.queries = EmailQueries(ctx.redis)

    def routes(self) -> list[Route]:
        return [
            Route("/emails", self.list_page, methods=["GET"], name="console_emails"),
            Route("/emails/{email_id}", self.detail_page, methods=["GET"], name="console_email"),
        ]

    async def list_page(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        # A form sends every field, the empty ones too: empty means "any".
        given = {k: v for k, v in request.query_params.items() if v.strip()}
        filters = {k: v for k, v in given.items() if k in FILTERS}
        who = principal(session)
        items: list[dict[str, Any]] = []
        next_cursor = None
        error = None
        try:
            query = parse_email_query({**given, "limit": str(PAGE_SIZE)}, who)
            assert query.filter is not None  # an account sees every API_USER of its own
            page = await self.queries.search(who, query.filter, query.limit, query.cursor)
            items = [r.to_api() for r in page.items]
            next_cursor = page.next_cursor
        except ApiError as exc:
            error = exc
        return self.ctx.render(
            request,
            session,
            "emails.html",
            {
                "nav": "emails",
                "items": items,
                "filters": filters,
                "error": error,
                "paged": "cursor" in given,
                "next_url": f"/emails?{urlencode({**filters, 'cursor': next_cursor})}"
                if next_cursor
                else None,
                "first_url": f"/emails?{urlencode(filters)}",
                "api_users": sorted(await visible_api_users(self.ctx.redis, who)),
                "statuses": list(Status),
                "reasons": {s.value: sorted(REASONS[s]) for s in Status},
                "types": list(EmailType),
                "export_body": json.dumps(
                    {"type": ExportType.EMAIL_STATUS.value, "filter": filters}
                ),
            },
        )

    async def detail_page(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        record = await self.queries.get(principal(session), request.path_params["email_id"])
        if record is None:
            return self.ctx.render(
                request,
                session,
                "error.html",
                {
                    "title": "No such email",
                    "message": "This email does not exist in your account, or its record "
                    "has passed the retention period.",
                    "nav": "emails",
                },
                status=404,
            )
        email = record.to_api()
        timeline = sorted(
            [{**e, "kind": "open"} for e in email.get("opens") or []]
            + [{**e, "kind": "click"} for e in email.get("clicks") or []],
            key=lambda e: str(e.get("time") or ""),
        )
        return self.ctx.render(
            request,
            session,
            "email_detail.html",
            {"nav": "emails", "email": email, "timeline": timeline},
        )
