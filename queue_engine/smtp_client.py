"""Outbound SMTP: reused connections per destination and one transaction per email.

A connection carries up to `messages_per_connection` transactions (RSET after
a refused one) and is closed after a short idle time, which is how MTAs keep
MPs' connection-rate limits happy. Every SMTP step has a timeout, and an
attempt as a whole ends by the lease of its email, so a slow MP costs time but
never a stuck worker, and no other engine can be sending the same email while
an attempt is still waiting for its answer.

Whatever breaks an attempt is reported at the stage it broke (connect,
greeting, ehlo, starttls, mail, rcpt, data): a reply an MP really gave is
classified by its code; a timeout, a lost connection or a reply that is not
SMTP is temporary, and the connection is closed so that no late reply can be
read as the answer to a later command. Opportunistic STARTTLS as Postfix does
it: a handshake that fails moves the attempt on to the next MX (or defers it),
and that MX is then used without TLS for `TLS_FALLBACK_SECONDS`.
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
QUIT_SECONDS = 5.0
TLS_FALLBACK_SECONDS = 3600.0
"""How long an MX whose STARTTLS failed is used in plain text (by this process)."""
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


STAGE_NAMES = {
    "connect": "connect",
    "greeting": "greeting",
    "ehlo": "EHLO",
    "starttls": "STARTTLS",
    "mail": "MAIL FROM",
    "rcpt": "RCPT TO",
    "data": "DATA",
}
_IN_TRANSACTION = frozenset({"mail", "rcpt", "data"})


@dataclass(slots=True)
class _Progress:
    """How far one attempt on one MX got, so whatever breaks it is told at its stage."""

    mx: str
    timeout: float
    deadline: float | None
    """Event-loop time by which the attempt must have its answer (its lease ends)."""
    stage: str = "connect"
    greeted: bool = False
    """The MP answered in SMTP: a later failure is not "never connected"."""
    sending_ip: str = ""
    message_sent: bool = False

    def refused(self, code: int, reply: str) -> AttemptResult:
        outcome = Outcome.PERMANENT if code >= 500 else Outcome.TEMPORARY
        return AttemptResult(outcome, code, reply, self.mx, self.sending_ip, True, self.stage)

    def failed(self, exc: Exception) -> AttemptResult:
        """What ended the attempt: an MP's refusal by its code (a broken STARTTLS never
        bounces mail), anything else temporary, described for the delivery log."""
        if (
            isinstance(exc, aiosmtplib.SMTPResponseException)
            and _is_refusal(exc.code)
            and self.stage != "starttls"
        ):
            return self.refused(exc.code, exc.message)
        return AttemptResult(
            Outcome.TEMPORARY,
            None,
            self._describe(exc),
            self.mx,
            self.sending_ip,
            self.greeted,
            self.stage,
        )

    def _describe(self, exc: Exception) -> str:
        what = STAGE_NAMES[self.stage]
        if self.stage == "data" and self.message_sent:
            what = "end of DATA (the MP may have the message)"
        if self.stage == "connect":
            return f"connection failed: {exc}"
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            text = _printable(exc.message)
            if exc.code == -1:  # aiosmtplib's code for a line that is not a reply
                return f"malformed reply to {what}: {text}"
            if self.stage == "starttls":
                return f"STARTTLS refused: {exc.code} {text}; this MX is next tried without TLS"
            return f"unexpected reply to {what}: {exc.code} {text}"
        if self.stage == "starttls":
            return f"TLS handshake failed: {exc}; this MX is next tried without TLS"
        if isinstance(exc, TimeoutError):
            loop_time = asyncio.get_running_loop().time()
            if self.deadline is not None and loop_time >= self.deadline:
                return f"timeout at {what}: the attempt ran out of its lease"
            return f"timeout at {what}: no complete reply within {self.timeout:g}s"
        if isinstance(exc, ConnectionError):
            return f"connection lost at {what}: {exc}"
        return f"{what} failed: {exc}"


def _is_refusal(code: int) -> bool:
    """A 4xx or 5xx: a reply an MP gives on purpose. Anything else where a refusal or
    the expected reply should be is a broken MP (or not an MP)."""
    return 400 <= code <= 599


def _printable(text: str, limit: int = 200) -> str:
    """What a broken MP sent, fit for the delivery log, the console and CSV exports."""
    text = text.removeprefix("Malformed SMTP response line: ").rstrip("\r\n")
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode() for c in text)[
        :limit
    ]


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
        self._plain_until: dict[tuple[str, int], float] = {}
        """MX (host, port) whose STARTTLS failed -> until when it is used without TLS."""

    @property
    def policy(self) -> Policy:
        return self.limiter.policy

    async def _open(
        self, destination: Destination, source: str, progress: _Progress
    ) -> aiosmtplib.SMTP:
        """Connect, read the greeting, EHLO, and STARTTLS (then EHLO again) when offered."""
        smtp = aiosmtplib.SMTP(
            hostname=destination.host,
            port=destination.port,
            local_hostname=self.helo_name,
            source_address=(source, 0) if source else None,
            timeout=self.timeout,
            start_tls=False,
            tls_context=self._tls,
        )
        mx = (destination.host, destination.port)
        try:
            async with asyncio.timeout_at(progress.deadline):
                try:
                    await smtp.connect()
                except aiosmtplib.SMTPException as exc:
                    if _at_greeting(exc):
                        progress.stage = "greeting"
                    raise
                progress.stage, progress.greeted = "ehlo", True
                sockname = smtp.get_transport_info("sockname")
                progress.sending_ip = sockname[0] if sockname else source
                await _hello(smtp)
                tls_failed_lately = self._plain_until.get(mx, 0) > time.monotonic()
                if smtp.supports_extension("starttls") and not tls_failed_lately:
                    progress.stage = "starttls"
                    await smtp.starttls()
                    progress.stage = "ehlo"
                    await _hello(smtp)  # RFC 3207 §4.2: what EHLO said before TLS is void
        except Exception:
            if progress.stage == "starttls":
                self._plain_until[mx] = time.monotonic() + TLS_FALLBACK_SECONDS
            smtp.close()
            raise
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

    async def _acquire(
        self, destination: Destination, domain: str, progress: _Progress
    ) -> Connection:
        provider = self.policy.provider(domain)
        idle = self._idle[(destination.host, destination.port, provider)]
        while idle:
            conn = idle.pop()
            if conn.smtp.is_connected and await self._ip_quota(conn.source):
                progress.greeted, progress.sending_ip = True, conn.sending_ip
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
                smtp = await self._open(destination, source, progress)
            except BaseException:
                await self.limiter.close_slot(source, domain, slot)
                self._unused_ip_unit(source)
                raise
            conn = Connection(smtp, destination, progress.sending_ip, source, domain, slot)
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
    async def connection(
        self, destination: Destination, domain: str, progress: _Progress
    ) -> AsyncIterator[Connection]:
        """A live connection to destination for domain, held exclusively until the block ends;
        one the block leaves by an exception is closed, whatever state it is in."""
        conn = await self._acquire(destination, domain, progress)
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
        async with asyncio.timeout(QUIT_SECONDS):
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
    within: float | None = None,
) -> AttemptResult:
    """One SMTP transaction, trying the destinations in order until one answers.

    `within` (seconds) bounds the whole attempt: the time left on the email's
    lease. Raises NoConnection when the policy allows no connection at all now.
    """
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    failure = AttemptResult(Outcome.TEMPORARY, None, "no destination", "", "", False, "connect")
    for destination in destinations:
        progress = _Progress(f"{destination.mx}:{destination.port}", pool.timeout, deadline)
        try:
            async with pool.connection(destination, domain, progress) as conn:
                return await _transaction(conn, progress, sender, recipient, message, smtputf8)
        except (aiosmtplib.SMTPException, OSError) as exc:  # OSError: TimeoutError, ssl errors
            failure = progress.failed(exc)
        # Once the MP has the envelope, another MX could deliver the message twice.
        if failure.outcome is Outcome.PERMANENT or progress.stage in _IN_TRANSACTION:
            return failure
    return failure


def _at_greeting(exc: aiosmtplib.SMTPException) -> bool:
    """Whether connect() failed after the TCP connection was made: aiosmtplib reports the
    greeting's refusal, loss or timeout as connect errors caused by an SMTP error."""
    return isinstance(exc, aiosmtplib.SMTPResponseException) or isinstance(
        exc.__cause__, aiosmtplib.SMTPException
    )


async def _hello(smtp: aiosmtplib.SMTP) -> None:
    """EHLO, or HELO where EHLO is not recognised (RFC 5321 §3.2)."""
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError as exc:
        if exc.code not in (500, 502):
            raise
        await smtp.helo()


def wire_body(body: bytes) -> bytes:
    """A message body as DATA carries it: CRLF line ends, dot-stuffed (RFC 5321 4.5.2).

    Done once per send call and shared by its recipients; aiosmtplib's data()
    would redo both regex passes for every recipient.
    """
    body = LINE_ENDINGS.sub(b"\r\n", body)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return LEADING_DOT.sub(b"..", body)


async def _end_of_data(smtp: aiosmtplib.SMTP, wire: bytes) -> aiosmtplib.SMTPResponse:
    """The message, already in wire form (`wire_body`, CRLF header lines), and its reply."""
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost at DATA")
    # aiosmtplib ignores data that arrives while no reply is expected; say we expect one.
    protocol._response_pending = True
    protocol.write(wire + b".\r\n")
    return await protocol.read_response(timeout=smtp.timeout)


async def _expect(smtp: aiosmtplib.SMTP, codes: tuple[int, ...], *command: bytes) -> None:
    response = await smtp.execute_command(*command)
    if response.code not in codes:
        raise aiosmtplib.SMTPResponseException(response.code, response.message)


async def _reset(smtp: aiosmtplib.SMTP, deadline: float | None) -> None:
    """RSET after a refusal, so the connection can carry the next email; closed if it fails."""
    try:
        async with asyncio.timeout_at(deadline):
            await _expect(smtp, (250,), b"RSET")
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


async def _transaction(
    conn: Connection,
    progress: _Progress,
    sender: str,
    recipient: str,
    message: bytes,
    smtputf8: bool,
) -> AttemptResult:
    """MAIL, RCPT, DATA. A refusal is returned (the connection goes on); anything else
    that goes wrong is raised, so that the connection is closed."""
    smtp = conn.smtp
    progress.stage = "mail"
    mail = [b"MAIL", b"FROM:<" + sender.encode() + b">"]
    if smtputf8:
        if not smtp.supports_extension("smtputf8"):
            return progress.refused(553, "5.6.7 recipient needs SMTPUTF8, which the MP lacks")
        mail.append(b"SMTPUTF8")
    try:
        async with asyncio.timeout_at(progress.deadline):
            # Addresses were validated at submission; aiosmtplib's mail()/rcpt() would
            # parse them again with email.utils on every message.
            await _expect(smtp, (250,), *mail)
            progress.stage = "rcpt"
            await _expect(smtp, (250, 251), b"RCPT", b"TO:<" + recipient.encode() + b">")
            progress.stage = "data"
            await _expect(smtp, (354,), b"DATA")
            progress.message_sent = True
            response = await _end_of_data(smtp, message)
            if response.code != 250:
                raise aiosmtplib.SMTPResponseException(response.code, response.message)
    except aiosmtplib.SMTPResponseException as exc:
        if not _is_refusal(exc.code):
            raise
        refused = progress.refused(exc.code, exc.message)
        await _reset(smtp, progress.deadline)
        return refused
    return AttemptResult(
        Outcome.DELIVERED,
        response.code,
        response.message,
        progress.mx,
        conn.sending_ip,
        True,
        "data",
    )
