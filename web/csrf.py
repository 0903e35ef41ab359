"""CSRF checks for the console: forms, htmx requests and websocket actions.

Every state-changing request carries the session's token (a form field, the
`X-CSRF-Token` header htmx adds, or a field of the websocket message), and
the websocket handshake must come from our own origin: a cookie alone never
changes anything.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import HTTPConnection

from web.session import Session

FIELD = "csrf_token"
HEADER = "x-csrf-token"


def token_matches(session: Session | None, given: object) -> bool:
    return (
        session is not None
        and isinstance(given, str)
        and bool(given)
        and hmac.compare_digest(given.encode(), session.csrf.encode())
    )


def request_token(connection: HTTPConnection, form: FormData | None) -> object:
    if HEADER in connection.headers:
        return connection.headers[HEADER]
    return form.get(FIELD) if form is not None else None


def same_origin(connection: HTTPConnection) -> bool:
    """The Origin header (which browsers always send on websockets) names this host."""
    origin = connection.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() == connection.headers.get("host", "").lower()
