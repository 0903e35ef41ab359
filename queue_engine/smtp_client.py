"""Outbound SMTP: reused connections per destination and one transaction per email.

A connection carries up to `messages_per_connection` transactions (RSET after
a refused one) and is closed after a short idle time, which is how MTAs keep
MPs' connection-rate limits happy. Every SMTP step has a timeout, so a slow
MP costs time but never a stuck worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib

from queue_engine.routing import Destination

IDLE_SECONDS = 10.0
LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
LEADING_DOT = re.compile(rb"(?m)^\.")


class Outcome(StrEnum):
    DELIVERED = "delivered"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    code: int | None
    reply: str
    mx: str
    sending_ip: str
    connected: bool
    stage: str

    @property
    def mp_reply(self) -> str:
        return f"{self.code} {self.reply}" if self.code else self.reply


@dataclass(slots=True)
class Connection:
    smtp: aiosmtplib.SMTP
    destination: Destination
    sending_ip: str
    sent: int = 0
    idle_since: float = 0.0


def _tls_context() -> ssl.SSLContext:
    # Opportunistic STARTTLS as MTAs do it (RFC 3207 §4.1): encrypt when offered,
    # without failing delivery on the self-signed certificates common on MX hosts.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SmtpPool:
    def __init__(
        self,
        *,
        helo_name: str,
        timeout: float,
        connections_per_host: int,
        messages_per_connection: int,
    ) -> None:
        self.helo_name = helo_name
        self.timeout = timeout
        self.messages_per_connection = messages_per_connection
        self._idle: dict[tuple[str, int], list[Connection]] = defaultdict(list)
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(connections_per_host)
        )
        self._tls = _tls_context()

    async def _open(self, destination: Destination) -> Connection:
        smtp = aiosmtplib.SMTP(
            hostname=destination.host,
            port=destination.port,
            local_hostname=self.helo_name,
            timeout=self.timeout,
            start_tls=None,
            tls_context=self._tls,
        )
        try:
            await smtp.connect()
        except BaseException:
            smtp.close()  # a cancelled connect must not leave the socket open
            raise
        sockname = smtp.get_transport_info("sockname")
        return Connection(smtp, destination, sockname[0] if sockname else "")

    @contextlib.asynccontextmanager
    async def connection(self, destination: Destination) -> AsyncIterator[Connection]:
        """A live connection to destination, held exclusively until the block ends."""
        key = (destination.host, destination.port)
        async with self._slots[key]:
            idle = self._idle[key]
            conn = idle.pop() if idle else None
            if conn is None or not conn.smtp.is_connected:
                conn = await self._open(destination)
            try:
                yield conn
            except BaseException:
                conn.smtp.close()
                raise
            conn.sent += 1
            if conn.smtp.is_connected and conn.sent < self.messages_per_connection:
                conn.idle_since = time.monotonic()
                idle.append(conn)
            else:
                await _quit(conn)

    async def close_idle(self, older_than: float = IDLE_SECONDS) -> None:
        cutoff = time.monotonic() - older_than
        for conns in self._idle.values():
            stale = [c for c in conns if c.idle_since <= cutoff]
            for conn in stale:
                conns.remove(conn)
            await asyncio.gather(*(_quit(c) for c in stale))

    async def close(self) -> None:
        await self.close_idle(older_than=-1.0)


async def _quit(conn: Connection) -> None:
    try:
        await asyncio.wait_for(conn.smtp.quit(), 5)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        conn.smtp.close()


async def send_one(
    pool: SmtpPool,
    destinations: list[Destination],
    sender: str,
    recipient: str,
    message: bytes,
    smtputf8: bool,
) -> AttemptResult:
    """One SMTP transaction, trying the destinations in order until one answers."""
    failure = AttemptResult(Outcome.TEMPORARY, None, "no destination", "", "", False, "connect")
    for destination in destinations:
        mx = f"{destination.mx}:{destination.port}"
        try:
            async with pool.connection(destination) as conn:
                return await _transaction(conn, mx, sender, recipient, message, smtputf8)
        except aiosmtplib.SMTPConnectResponseError as exc:
            failure = _refused_greeting(exc, mx)
            if failure.outcome is Outcome.PERMANENT:
                return failure
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, OSError) as exc:
            failure = AttemptResult(
                Outcome.TEMPORARY, None, f"connection failed: {exc}", mx, "", False, "connect"
            )
        except _Dropped as exc:
            # The MP saw us: a later attempt must not count as "never connected".
            return AttemptResult(
                Outcome.TEMPORARY, None, str(exc), mx, exc.sending_ip, True, exc.stage
            )
    return failure


class _Dropped(Exception):
    def __init__(self, message: str, stage: str, sending_ip: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.sending_ip = sending_ip


def _refused_greeting(exc: aiosmtplib.SMTPResponseException, mx: str) -> AttemptResult:
    outcome = Outcome.PERMANENT if exc.code >= 500 else Outcome.TEMPORARY
    return AttemptResult(outcome, exc.code, exc.message, mx, "", True, "connect")


def wire_body(body: bytes) -> bytes:
    """A message body as DATA carries it: CRLF line ends, dot-stuffed (RFC 5321 4.5.2).

    Done once per send call and shared by its recipients; aiosmtplib's data()
    would redo both regex passes for every recipient.
    """
    body = LINE_ENDINGS.sub(b"\r\n", body)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return LEADING_DOT.sub(b"..", body)


async def _data(smtp: aiosmtplib.SMTP, wire: bytes) -> aiosmtplib.SMTPResponse:
    """DATA with a message already in wire form (`wire_body`, CRLF header lines)."""
    start = await smtp.execute_command(b"DATA")
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost at DATA")
    # aiosmtplib ignores data that arrives while no reply is expected; say we expect one.
    protocol._response_pending = True
    protocol.write(wire + b".\r\n")
    try:
        response = await protocol.read_response(timeout=smtp.timeout)
    except aiosmtplib.SMTPTimeoutError:
        smtp.close()  # the late reply would be mistaken for the next command's
        raise
    if response.code != 250:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


async def _expect(smtp: aiosmtplib.SMTP, code: int, *command: bytes) -> None:
    response = await smtp.execute_command(*command)
    if response.code not in (code, 251):
        raise aiosmtplib.SMTPResponseException(response.code, response.message)


async def _transaction(
    conn: Connection, mx: str, sender: str, recipient: str, message: bytes, smtputf8: bool
) -> AttemptResult:
    smtp = conn.smtp
    stage = "mail"
    try:
        mail = [b"MAIL", b"FROM:<" + sender.encode() + b">"]
        if smtputf8:
            if not smtp.supports_extension("smtputf8"):
                return AttemptResult(
                    Outcome.PERMANENT,
                    553,
                    "5.6.7 recipient needs SMTPUTF8, which the MP lacks",
                    mx,
                    conn.sending_ip,
                    True,
                    stage,
                )
            mail.append(b"SMTPUTF8")
        # Addresses were validated at submission; aiosmtplib's mail()/rcpt() would
        # parse them again with email.utils on every message.
        await _expect(smtp, 250, *mail)
        stage = "rcpt"
        await _expect(smtp, 250, b"RCPT", b"TO:<" + recipient.encode() + b">")
        stage = "data"
        response = await _data(smtp, message)
    except aiosmtplib.SMTPServerDisconnected as exc:
        raise _Dropped(
            f"connection lost at {stage.upper()}: {exc}", stage, conn.sending_ip
        ) from None
    except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
        raise _Dropped(f"timeout at {stage.upper()}: {exc}", stage, conn.sending_ip) from None
    except aiosmtplib.SMTPResponseException as exc:
        with contextlib.suppress(aiosmtplib.SMTPException):
            await smtp.rset()
        outcome = Outcome.PERMANENT if exc.code >= 500 else Outcome.TEMPORARY
        return AttemptResult(outcome, exc.code, exc.message, mx, conn.sending_ip, True, stage)
    return AttemptResult(
        Outcome.DELIVERED, response.code, response.message, mx, conn.sending_ip, True, "data"
    )
