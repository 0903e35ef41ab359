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

from queue_engine.limits import HOUR_MS, Limiter, SlotDenied
from queue_engine.policy import Policy
from queue_engine.routing import Destination
from queue_engine.statuses import PauseReason

IDLE_SECONDS = 10.0
IP_QUOTA_BLOCK = 20
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


@dataclass(slots=True, eq=False)
class Connection:
    smtp: aiosmtplib.SMTP
    destination: Destination
    sending_ip: str
    source: str
    """The configured egress source ("" when the OS picks)."""
    domain: str
    slot: str
    sent: int = 0
    idle_since: float = 0.0


class NoConnection(Exception):
    """The policy allows no connection now; `pause` says why when waiting will not help soon."""

    def __init__(self, pause: PauseReason | None, retry_at_ms: int, reply: str) -> None:
        super().__init__(reply)
        self.pause = pause
        self.retry_at_ms = retry_at_ms
        self.reply = reply


def _tls_context() -> ssl.SSLContext:
    # Opportunistic STARTTLS as MTAs do it (RFC 3207 §4.1): encrypt when offered,
    # without failing delivery on the self-signed certificates common on MX hosts.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SmtpPool:
    """Connections per (MX host, provider), opened under the policy's limits.

    An idle connection is reused before a new one is opened; a new one takes a
    slot from the limiter on the next egress source in turn whose IP quota is
    not spent, so the limits hold across every engine process.
    """

    def __init__(self, *, helo_name: str, timeout: float, limiter: Limiter) -> None:
        self.helo_name = helo_name
        self.timeout = timeout
        self.limiter = limiter
        self._idle: dict[tuple[str, int, str], list[Connection]] = defaultdict(list)
        self._turn: dict[str, int] = defaultdict(int)
        self._spent: dict[str, int] = {}
        self._ip_budget: dict[str, tuple[int, int]] = {}
        self._ip_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        """Egress source → (IP-quota units this process holds, the hour they belong to)."""
        """Egress source → when its IP quota refills, as far as this process knows."""
        self._open_conns: set[Connection] = set()
        self._tls = _tls_context()

    @property
    def policy(self) -> Policy:
        return self.limiter.policy

    async def _open(self, destination: Destination, source: str) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=destination.host,
            port=destination.port,
            local_hostname=self.helo_name,
            source_address=(source, 0) if source else None,
            timeout=self.timeout,
            start_tls=None,
            tls_context=self._tls,
        )
        try:
            await smtp.connect()
        except BaseException:
            smtp.close()  # a cancelled connect must not leave the socket open
            raise
        return smtp

    def _sources(self, domain: str) -> list[str]:
        """Egress sources in turn for this provider, without those whose IP quota is spent."""
        now = self.limiter.now_ms()
        sources = list(self.policy.sources) or [""]
        start = self._turn[self.policy.provider(domain)] % len(sources)
        rotated = sources[start:] + sources[:start]
        return [s for s in rotated if self._spent.get(s, 0) <= now]

    async def _ip_quota(self, source: str) -> bool:
        """Take one unit of the source's IP quota; False (and remembered) when it is spent.

        Units come from Redis in blocks kept by this process, so a quota costs one
        round trip per block, not per message; a block does not outlive its hour.
        """
        if not self.limiter.ip_quota:
            return True
        async with self._ip_locks[source]:  # one block request at a time per source
            hour = self.limiter.now_ms() // HOUR_MS
            left, of_hour = self._ip_budget.get(source, (0, hour))
            if left > 0 and of_hour == hour:
                self._ip_budget[source] = (left - 1, hour)
                return True
            grant = await self.limiter.take_ip(source, IP_QUOTA_BLOCK)
            if grant.granted:
                self._ip_budget[source] = (grant.granted - 1, hour)
                return True
            self._spent[source] = grant.until_ms or self.limiter.now_ms() + 60_000
            return False

    def _unused_ip_unit(self, source: str) -> None:
        if source in self._ip_budget:
            left, hour = self._ip_budget[source]
            self._ip_budget[source] = (left + 1, hour)

    async def _acquire(self, destination: Destination, domain: str) -> Connection:
        provider = self.policy.provider(domain)
        idle = self._idle[(destination.host, destination.port, provider)]
        while idle:
            conn = idle.pop()
            if conn.smtp.is_connected and await self._ip_quota(conn.source):
                return conn
            await self._release(conn)
        denied: set[SlotDenied] = set()
        for source in self._sources(domain):
            if not await self._ip_quota(source):
                continue
            slot, why = await self.limiter.open_slot(source, domain)
            if slot is None:
                assert why is not None
                denied.add(why)
                self._unused_ip_unit(source)
                continue
            self._turn[provider] += 1
            try:
                smtp = await self._open(destination, source)
            except BaseException:
                await self.limiter.close_slot(source, domain, slot)
                self._unused_ip_unit(source)
                raise
            sockname = smtp.get_transport_info("sockname")
            sending_ip = sockname[0] if sockname else source
            conn = Connection(smtp, destination, sending_ip, source, domain, slot)
            self._open_conns.add(conn)
            return conn
        raise self._why_not(domain, denied)

    def _why_not(self, domain: str, denied: set[SlotDenied]) -> NoConnection:
        now = self.limiter.now_ms()
        if SlotDenied.OPEN in denied:
            return NoConnection(None, now + 1000, "all connections allowed are in use")
        if SlotDenied.RATE in denied:
            p = self.policy.for_domain(domain)
            return NoConnection(
                PauseReason.IP_CONNECTION_RATE,
                self.limiter.next_minute_ms(),
                f"mailpulse: {p.new_connections_per_minute} new connections a minute per IP"
                f" to {self.policy.provider(domain)} reached on every sending IP",
            )
        refill = min((self._spent.get(s, now) for s in self.policy.sources or [""]), default=now)
        return NoConnection(
            PauseReason.IP_QUOTA,
            max(refill, now + 1000),
            "mailpulse: IP quota reached on every sending IP",
        )

    async def _release(self, conn: Connection) -> None:
        self._open_conns.discard(conn)
        await _quit(conn)
        await self.limiter.close_slot(conn.source, conn.domain, conn.slot)

    async def heartbeat(self) -> None:
        """Renew the slots of every open connection; engines call this every few seconds."""
        if self._open_conns:
            await self.limiter.renew_slots([(c.source, c.domain, c.slot) for c in self._open_conns])

    @contextlib.asynccontextmanager
    async def connection(self, destination: Destination, domain: str) -> AsyncIterator[Connection]:
        """A live connection to destination for domain, held exclusively until the block ends."""
        conn = await self._acquire(destination, domain)
        try:
            yield conn
        except BaseException:
            conn.smtp.close()
            self._open_conns.discard(conn)
            await self.limiter.close_slot(conn.source, conn.domain, conn.slot)
            raise
        conn.sent += 1
        limit = self.policy.for_domain(domain).messages_per_connection
        if conn.smtp.is_connected and conn.sent < limit:
            conn.idle_since = time.monotonic()
            key = (destination.host, destination.port, self.policy.provider(domain))
            self._idle[key].append(conn)
        else:
            await self._release(conn)

    async def close_idle(self, older_than: float = IDLE_SECONDS) -> None:
        cutoff = time.monotonic() - older_than
        for conns in self._idle.values():
            stale = [c for c in conns if c.idle_since <= cutoff]
            for conn in stale:
                conns.remove(conn)
            await asyncio.gather(*(self._release(c) for c in stale))

    async def close(self) -> None:
        await self.close_idle(older_than=-1.0)
        hour = self.limiter.now_ms() // HOUR_MS
        for source, (left, of_hour) in self._ip_budget.items():
            if left and of_hour == hour:
                await self.limiter.refund_ip(source, left)
        self._ip_budget.clear()


async def _quit(conn: Connection) -> None:
    try:
        async with asyncio.timeout(5):
            await conn.smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        conn.smtp.close()


async def send_one(
    pool: SmtpPool,
    destinations: list[Destination],
    domain: str,
    sender: str,
    recipient: str,
    message: bytes,
    smtputf8: bool,
) -> AttemptResult:
    """One SMTP transaction, trying the destinations in order until one answers.

    Raises NoConnection when the policy allows no connection at all right now.
    """
    failure = AttemptResult(Outcome.TEMPORARY, None, "no destination", "", "", False, "connect")
    for destination in destinations:
        mx = f"{destination.mx}:{destination.port}"
        try:
            async with pool.connection(destination, domain) as conn:
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
