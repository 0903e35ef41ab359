"""Request bodies: bounded in size and in time, whatever the route reads them with.

The JSON handlers cap their own bodies (web/requests.py), but Starlette's form
parser reads a urlencoded body to its end, and no part of uvicorn times out a
body that trickles in a byte at a time. This middleware sits in front of every
route: a declared length over the limit is refused before a byte is read, a
streamed body is cut off as it passes the limit, and a body still arriving at
its deadline is answered 408, so a slow client holds no handler for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.errors import ApiError, error_response

BODY_TIMEOUT_SECONDS = 60.0
"""The whole body must arrive within this (20 MiB, the largest upload, needs ~3 Mbit/s)."""


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str], int],
        timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if declared is None and not chunked:
            # No body (a GET, the tracking pixel): nothing to bound, no timer to pay for.
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        cut = False

        async def closing(message: Message) -> None:
            # The rest of a refused body would keep the connection busy: end it.
            if cut and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            cut = True
            response = error_response(
                413, "too_large", f"the body is larger than {limit} bytes", "body"
            )
            await response(scope, receive, closing)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        received = 0
        complete = False

        async def limited() -> Message:
            nonlocal received, complete, cut
            if complete:  # the body is in: what is left to wait for is the disconnect
                return await receive()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as the body arrives, and the request never ends.
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                cut = True
                raise ApiError(408, "the request body arrived too slowly", field="body") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    raise ApiError(413, f"the body is larger than {limit} bytes", field="body")
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited, closing)


def _framing(scope: Scope) -> tuple[str | None, bool]:
    """The declared Content-Length, and whether the body is chunked."""
    declared, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value.decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked
