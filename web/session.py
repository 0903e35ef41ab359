"""Console sessions in a signed cookie: who is logged in, and the CSRF token.

The cookie holds the whole session (no server-side store), signed with a key
derived from the settings' secret, so every web process accepts it and a
restart keeps people logged in. A visitor who is not logged in gets a session
too, with only a CSRF token, so the login form itself is protected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace

from starlette.requests import HTTPConnection
from starlette.responses import Response

COOKIE = "mailpulse_session"
MAX_AGE_SECONDS = 12 * 3600
"""A working day: after that the console asks for the password again."""


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    account: str | None = None
    email: str | None = None
    expires: int = 0

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(24), expires=int(time.time()) + MAX_AGE_SECONDS)

    def logged_in(self, account: str, email: str) -> Session:
        """A fresh token on login, so a token seen before login is worth nothing after."""
        fresh = Session.anonymous()
        return replace(fresh, account=account, email=email)


class SessionCodec:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"mailpulse console session", hashlib.sha256).digest()

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())

    def encode(self, session: Session) -> str:
        body = {"c": session.csrf, "a": session.account, "e": session.email, "x": session.expires}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload.encode())}"

    def decode(self, raw: str | None) -> Session | None:
        """The session if the signature holds and it has not expired; None otherwise."""
        if not raw or len(raw) > 4096:
            return None
        payload, _, signature = raw.partition(".")
        if not hmac.compare_digest(self._sign(payload.encode()), signature):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(csrf=body["c"], account=body["a"], email=body["e"], expires=body["x"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        return session if session.expires > time.time() else None

    def read(self, connection: HTTPConnection) -> Session | None:
        return self.decode(connection.cookies.get(COOKIE))

    def write(self, response: Response, connection: HTTPConnection, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.encode(session),
            max_age=max(0, session.expires - int(time.time())),
            path="/",
            httponly=True,
            samesite="lax",
            secure=connection.url.scheme in {"https", "wss"},
        )


def _b64(data: bytes) -> str:
    """Unpadded: `=` would make the cookie value a quoted string."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
