"""Inbound SMTP for what MPs send back: DSN bounces and ARF spam reports.

This server only stores: every accepted message goes, raw, into a Redis
stream that the classifier consumes, so a slow parser never makes an MP wait
and a crash of the parser loses nothing. It never relays, and takes mail only
for the return-path domain: without one configured it refuses every recipient,
so it is no open drop box for whoever finds the port.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.asyncio import Redis
from redis.exceptions import RedisError

from queue_engine import keys

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
STREAM_MAXLEN = 100_000


class InboundHandler:
    def __init__(self, redis: Redis, return_path_domain: str | None) -> None:
        self.redis = redis
        self.domain = return_path_domain

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self.domain or address.rpartition("@")[2].lower() != self.domain:
            return "550 5.7.1 Relaying denied: this server only takes bounces and reports"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        fields: dict[Any, Any] = {
            "mail_from": envelope.mail_from or "",
            "rcpt_to": ",".join(envelope.rcpt_tos),
            "peer": str(session.peer[0]) if session.peer else "",
            "received_ms": str(int(time.time() * 1000)),
            # base64: the stream is read by clients that decode replies as UTF-8,
            # and a bounce in GBK or with 8-bit junk must survive that.
            "data_b64": base64.b64encode(content).decode(),
        }
        try:
            await self.redis.xadd(
                keys.INBOUND_STREAM, fields, maxlen=STREAM_MAXLEN, approximate=True
            )
        except RedisError:
            return "451 4.3.0 Storage unavailable, try again later"
        return "250 2.0.0 OK: stored"


async def serve_inbound(
    redis: Redis, host: str, port: int, return_path_domain: str | None, hostname: str
) -> asyncio.Server:
    handler = InboundHandler(redis, return_path_domain)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(
            handler,
            hostname=hostname,
            data_size_limit=MAX_MESSAGE_BYTES,
            decode_data=False,
            ident="mailpulse inbound",
        ),
        host=host,
        port=port,
    )
