"""uvicorn's HTTP protocol with a deadline and a size cap on request headers.

uvicorn times out only an idle keep-alive connection: a client that opens a
connection and trickles its request headers a byte at a time (slowloris) holds
it for ever, and httptools puts no limit on how large the headers grow. This
protocol answers `408` to headers not complete within their deadline and `431`
to headers past their size, and closes the connection. Bodies are bounded by
the web app itself (web/body_limit.py), where the answer can be a JSON error.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_SECONDS = 10.0
MAX_HEADER_BYTES = 64 * 1024


class HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools stops, uvicorn answers (431, below)."""


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout_seconds = HEADER_TIMEOUT_SECONDS
    max_header_bytes = MAX_HEADER_BYTES
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _oversized = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._headers_done()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_done()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if self._oversized:
            self._refuse(b"431 Request Header Fields Too Large")
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._oversized = True
            raise HeadersTooLarge

    def _await_headers(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.header_timeout_seconds, self._refuse, b"408 Request Timeout"
            )

    def _headers_done(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: bytes) -> None:
        self._headers_done()
        if not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()
