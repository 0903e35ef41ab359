"""Logging in and out of the console (account-scoped console users)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from queue_engine.accounts import authenticate_console_user
from web.console.base import ConsoleContext
from web.ratelimit import RateLimiter
from web.requests import client_ip
from web.session import Session

MAX_FIELD = 256


def _safe_next(raw: object) -> str:
    """Only a path on this site: `//evil.example` or a full URL would be an open redirect."""
    if isinstance(raw, str) and raw.startswith("/") and not raw.startswith(("//", "/\\")):
        return raw
    return "/"


class LoginPages:
    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login_form, methods=["GET"], name="login"),
            Route("/login", self.login, methods=["POST"], name="login_submit"),
            Route("/logout", self.logout, methods=["POST"], name="logout"),
        ]

    async def login_form(self, request: Request) -> Response:
        session = self.ctx.session(request)
        target = _safe_next(request.query_params.get("next"))
        if session.account:
            return RedirectResponse(target, status_code=303)
        return self.ctx.render(request, session, "login.html", {"next": target, "error": None})

    async def login(self, request: Request) -> Response:
        session = self.ctx.session(request)
        form = await self.ctx.checked_form(request, session)
        if form is None:
            return self.ctx.refused(request, session)
        email, password = form.get("email"), form.get("password")
        target = _safe_next(form.get("next"))
        account = None
        limiter: RateLimiter = request.app.state.limiter
        ip = client_ip(request, request.app.state.trusted_proxies)
        who = email.strip().lower()[:MAX_FIELD] if isinstance(email, str) else ""
        wait = await limiter.blocked(limiter.auth_failures, ip) or await limiter.blocked(
            limiter.login_failures, who
        )
        if wait is not None:
            return self._too_many(request, session, target, email, wait)
        if (
            isinstance(email, str)
            and isinstance(password, str)
            and len(email) <= MAX_FIELD
            and len(password) <= MAX_FIELD
        ):
            account = await authenticate_console_user(self.ctx.redis, email.strip(), password)
        if account is None:
            await limiter.count(limiter.auth_failures, ip)
            await limiter.count(limiter.login_failures, who)
            # One answer whether the email is unknown or the password wrong: no oracle.
            return self.ctx.render(
                request,
                session,
                "login.html",
                {"next": target, "error": "Wrong email or password.", "email": email},
            )
        assert isinstance(email, str)
        response = RedirectResponse(target, status_code=303)
        self.ctx.sessions.write(response, request, session.logged_in(account, email.strip()))
        return response

    def _too_many(
        self, request: Request, session: Session, target: str, email: object, wait: int
    ) -> Response:
        minutes = max(1, round(wait / 60))
        response = self.ctx.render(
            request,
            session,
            "login.html",
            {
                "next": target,
                "error": f"Too many failed attempts. Try again in {minutes} min.",
                "email": email,
            },
            status=429,
        )
        response.headers["Retry-After"] = str(wait)
        return response

    async def logout(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if await self.ctx.checked_form(request, session) is None:
            return self.ctx.refused(request, session)
        response = RedirectResponse("/login", status_code=303)
        self.ctx.sessions.write(response, request, Session.anonymous())
        return response
