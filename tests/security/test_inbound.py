"""The inbound SMTP server is no relay and no drop box: it takes mail only for the
return-path domain, and refuses every recipient while none is configured.
(A forged bounce that does get in changes nothing: tests/e2e/test_feedback_path.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiosmtplib
import pytest
from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.inbound import serve_inbound

DOMAIN = "bounces.mailpulse.test"
REPORT = b"Subject: report\r\n\r\nbody\r\n"

Inbound = Callable[[str | None], Awaitable[int]]


@pytest.fixture
async def inbound(redis: Redis) -> AsyncIterator[Inbound]:
    servers = []

    async def start(domain: str | None) -> int:
        server = await serve_inbound(redis, "127.0.0.1", 0, domain, "inbound.test")
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def refused(port: int, recipient: str) -> aiosmtplib.SMTPRecipientRefused:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as smtp:
        await smtp.mail("")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as caught:
            await smtp.rcpt(recipient)
        return caught.value


@pytest.mark.parametrize(
    "recipient",
    [f"bounce+x@{DOMAIN}", "postmaster@example.com", "someone@gmail.example", "root@localhost"],
)
async def test_without_a_return_path_domain_every_recipient_is_refused(
    inbound: Inbound, redis: Redis, recipient: str
) -> None:
    port = await inbound(None)
    error = await refused(port, recipient)
    assert error.code == 550 and "5.7.1" in error.message
    assert await redis.exists(keys.INBOUND_STREAM) == 0


@pytest.mark.parametrize(
    "recipient",
    [
        "victim@gmail.example",  # plain relaying
        f"x@sub.{DOMAIN}",  # a subdomain is another domain
        f"x@{DOMAIN}.evil.example",  # our domain as a prefix
        f"x@evil{DOMAIN}",  # ... or as a suffix without the dot
        f'"x@{DOMAIN}"@evil.example',  # our domain inside a quoted local part
    ],
)
async def test_with_a_return_path_domain_only_that_domain_is_taken(
    inbound: Inbound, redis: Redis, recipient: str
) -> None:
    port = await inbound(DOMAIN)
    error = await refused(port, recipient)
    assert error.code == 550 and "5.7.1" in error.message
    assert await redis.exists(keys.INBOUND_STREAM) == 0


@pytest.mark.parametrize(
    "recipient",
    [f"@{DOMAIN}:victim@evil.example", f"x@{DOMAIN}."],  # a source route (RFC 5321 C); a dot
)
async def test_malformed_tricks_are_refused_before_the_handler(
    inbound: Inbound, redis: Redis, recipient: str
) -> None:
    port = await inbound(DOMAIN)
    error = await refused(port, recipient)
    assert error.code == 553  # aiosmtpd's "malformed address"
    assert await redis.exists(keys.INBOUND_STREAM) == 0


async def test_mail_for_the_return_path_domain_is_stored_whatever_the_case(
    inbound: Inbound, redis: Redis
) -> None:
    port = await inbound(DOMAIN)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as smtp:
        # One refused recipient beside a good one: only the good one is kept.
        errors, _ = await smtp.sendmail(
            "", [f"bounce+x@{DOMAIN.upper()}", "victim@gmail.example"], REPORT
        )
    assert set(errors) == {"victim@gmail.example"}
    [(_, fields)] = await redis.xrange(keys.INBOUND_STREAM)
    assert fields["rcpt_to"] == f"bounce+x@{DOMAIN.upper()}"
