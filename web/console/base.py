"""What every console page shares: the session, rendering, login and CSRF guards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from redis.asyncio import Redis
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from queue_engine.accounts import Principal
from web import csrf
from web.session import Session, SessionCodec


class ConsoleContext:
    def __init__(self, redis: Redis, sessions: SessionCodec, templates: Jinja2Templates) -> None:
        self.redis = redis
        self.sessions = sessions
        self.templates = templates

    def session(self, request: Request) -> Session:
        return self.sessions.read(request) or Session.anonymous()

    def render(
        self,
        request: Request,
        session: Session,
        name: str,
        context: Mapping[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        response = self.templates.TemplateResponse(
            request, name, {"session": session, **(context or {})}, status_code=status
        )
        # Sets the cookie of a new visitor, so the token in the page is one we can check.
        self.sessions.write(response, request, session)
        return response

    def login_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    async def checked_form(self, request: Request, session: Session) -> FormData | None:
        """The posted form if it carries this session's CSRF token; None otherwise."""
        form = await request.form(max_files=0, max_fields=50)
        return form if self.token_ok(request, session, form) else None

    def token_ok(self, request: Request, session: Session, form: FormData) -> bool:
        """Whether a form already read (an upload, say) carries this session's CSRF token."""
        return csrf.token_matches(session, csrf.request_token(request, form))

    def refused(self, request: Request, session: Session) -> Response:
        return self.render(
            request,
            session,
            "error.html",
            {
                "title": "This form has expired",
                "message": "The page was open too long or came from elsewhere. "
                "Reload the page and try again.",
            },
            status=403,
        )


def principal(session: Session) -> Principal:
    assert session.account is not None
    return Principal(session.account)
