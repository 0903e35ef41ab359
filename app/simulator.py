"""The MP simulator: local SMTP servers that answer like mailbox providers.

Each server plays one `Profile` (see `mp_profiles.toml`): its greeting, the
replies it gives, the limits at which it throttles with its provider's real
wording, a share of unknown users and spam rejections, slow replies and
dropped connections. `MPServer()` without a profile accepts everything.

On every profile, what a recipient gets can also be forced by its local part,
so demo traffic and tests can aim at each behaviour on any domain routed here:
  `unknown*`   the profile's 5xx unknown-user reply (plain: 550 5.1.1 user unknown)
  `spam*`      the profile's spam rejection (plain: 554 5.7.1, in reply to RCPT)
  `tempfail*`  a 4xx on the first attempt for that address, then accepted
  `drop*`      the connection is dropped after DATA is sent, before the reply

A profile's `fault` makes the whole server a broken MP, for the engine's fault
tests and to watch in the console: `refuse` (a closed port), `stall` (no reply
at `fault_stage`), `garbage` (a line that is not SMTP at `fault_stage`),
`tarpit` (every reply one byte a second), `drop_in_data` (the connection cut
while the message comes in) and `bad_tls` (STARTTLS offered, then no TLS).
Every server listens on 127.0.0.1 only: the simulator can never send mail out.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import random
import re
import socket
import ssl
import string
import time
import tomllib
import weakref
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from app.mp_reports import Reporter, build_arf, build_dsn
from queue_engine.routing import normalize_domain

__all__ = [
    "DEFAULT_PROFILES",
    "Limit",
    "MPServer",
    "MPState",
    "Profile",
    "ProfileError",
    "Received",
    "Simulator",
    "in_share",
    "load_profiles",
    "ports_from_routes",
    "write_routes",
]

DEFAULT_PROFILES = Path(__file__).with_name("mp_profiles.toml")

S250_QUEUED = "250 2.0.0 Ok: queued as {id}"
S421_TRY_LATER = "421 4.7.0 Temporary failure, try again later"
S550_USER_UNKNOWN = "550 5.1.1 The email account that you tried to reach does not exist"
S554_SPAM = "554 5.7.1 Message rejected as spam"

PLACEHOLDERS = frozenset({"ip", "rcpt", "host", "id", "time"})
RATE_WINDOW_SECONDS = 60.0
_FORCED_PREFIXES = ("unknown", "spam", "tempfail", "drop")
FAULTS = ("refuse", "stall", "garbage", "tarpit", "drop_in_data", "bad_tls")
FAULT_STAGES = ("greeting", "ehlo", "mail", "rcpt", "data", "dot")
"""Where `stall` and `garbage` strike: before the greeting, in reply to EHLO/HELO, MAIL,
RCPT or DATA, or in reply to the message itself ("dot", the end of DATA)."""
_STAGE_VERBS = {"ehlo": ("EHLO", "HELO"), "mail": ("MAIL",), "rcpt": ("RCPT",), "data": ("DATA",)}
GARBAGE_REPLY = "\x00\x1b[7mgarbled\x7f reply"
TARPIT_SECONDS_PER_BYTE = 1.0


# -- profiles ------------------------------------------------------------------------------


class ProfileError(ValueError):
    """A profile file is unusable; the message names the file, the profile and the key."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A limit (> 0) and the reply the MP gives while it is exceeded."""

    limit: int
    reply: str


@dataclass(frozen=True, slots=True)
class Profile:
    """How one simulated MP behaves. The defaults are the plain accepting MP."""

    name: str = "mp"
    domains: tuple[str, ...] = ()
    catch_all: bool = False
    hostname: str | None = None  # None: "<server name>.simulator"
    ident: str | None = None  # None: the server name
    accept_reply: str = S250_QUEUED
    unknown_share: float = 0.0
    unknown_reply: str = S550_USER_UNKNOWN
    spam_share: float = 0.0
    spam_reply: str = S554_SPAM
    spam_stage: str = "rcpt"  # or "data"
    tempfail_reply: str = S421_TRY_LATER
    drop_share: float = 0.0
    reply_delay: float = 0.0
    data_delay: float = 0.0
    fault: str | None = None  # one of FAULTS
    fault_stage: str = "greeting"  # for "stall" and "garbage": one of FAULT_STAGES
    per_connection: Limit | None = None
    per_minute: Limit | None = None
    per_recipient: Limit | None = None
    max_connections: Limit | None = None


_LIMITS = ("per_connection", "per_minute", "per_recipient", "max_connections")
_REPLY_CODES: dict[str, tuple[int, int]] = {  # key -> allowed reply code range
    "accept_reply": (250, 250),
    "unknown_reply": (550, 554),
    "spam_reply": (550, 554),
    "tempfail_reply": (400, 499),
    "per_connection": (400, 499),
    "per_minute": (400, 499),
    "per_recipient": (400, 499),
    "max_connections": (421, 421),  # the only refusal a greeting may carry besides 554
}
_KEYS = frozenset(
    {
        "domains",
        "catch_all",
        "hostname",
        "ident",
        "accept_reply",
        "unknown_share",
        "unknown_reply",
        "spam_share",
        "spam_reply",
        "spam_stage",
        "tempfail_reply",
        "drop_share",
        "reply_delay",
        "data_delay",
        "fault",
        "fault_stage",
        *_LIMITS,
    }
)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_REPLY = re.compile(r"([2-5]\d\d) [\x20-\x7e]+")
_TEXT = re.compile(r"[\x20-\x7e]*")
MAX_REPLY_CHARS = 480  # RFC 5321 §4.5.3.1.5 allows 512 octets per reply line, CRLF included


def load_profiles(path: Path = DEFAULT_PROFILES) -> list[Profile]:
    """The profiles of a profile file, in file order; `ProfileError` if anything is off."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: invalid TOML: {exc}") from exc
    extra = sorted(set(data) - {"profiles"})
    if extra:
        raise ProfileError(f"{path}: unknown top-level key {extra[0]!r} (expected [profiles.NAME])")
    table = data.get("profiles")
    if not isinstance(table, dict) or not table:
        raise ProfileError(f"{path}: no profiles: expected [profiles.NAME] tables")
    profiles = [_profile(path, name, raw) for name, raw in table.items()]
    owner: dict[str, str] = {}
    for profile in profiles:
        for domain in profile.domains:
            if domain in owner:
                raise ProfileError(
                    f"{path}: profile {profile.name!r}: key 'domains': {domain!r} "
                    f"is already served by profile {owner[domain]!r}"
                )
            owner[domain] = profile.name
    catch_alls = [p.name for p in profiles if p.catch_all]
    if len(catch_alls) > 1:
        raise ProfileError(
            f"{path}: profile {catch_alls[1]!r}: key 'catch_all': "
            f"profile {catch_alls[0]!r} is the catch-all already"
        )
    return profiles


def _profile(path: Path, name: str, raw: object) -> Profile:
    where = f"{path}: profile {name!r}"
    if not _NAME.fullmatch(name):
        raise ProfileError(f"{where}: a name is 1-32 of a-z, 0-9, '_', '-'")
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: must be a table ([profiles.{name}])")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ProfileError(
            f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(_KEYS))})"
        )
    get = _Getter(where, raw)
    catch_all = get.boolean("catch_all", False)
    domains = get.domains(required=not catch_all)
    stage = get.text("spam_stage", "rcpt")
    if stage not in ("rcpt", "data"):
        raise ProfileError(f"{where}: key 'spam_stage': must be 'rcpt' or 'data', got {stage!r}")
    fault = get.text("fault", None)
    if fault is not None and fault not in FAULTS:
        raise ProfileError(
            f"{where}: key 'fault': must be one of {', '.join(FAULTS)}, got {fault!r}"
        )
    fault_stage = get.text("fault_stage", "greeting")
    if fault_stage not in FAULT_STAGES:
        raise ProfileError(
            f"{where}: key 'fault_stage': must be one of {', '.join(FAULT_STAGES)},"
            f" got {fault_stage!r}"
        )
    if "fault_stage" in raw and fault not in ("stall", "garbage"):
        raise ProfileError(f"{where}: key 'fault_stage': only for fault 'stall' or 'garbage'")
    defaults = Profile()
    return Profile(
        name=name,
        domains=domains,
        catch_all=catch_all,
        hostname=get.text("hostname", None, hostname=True),
        ident=get.template("ident", None),
        accept_reply=get.reply("accept_reply", defaults.accept_reply),
        unknown_share=get.share("unknown_share"),
        unknown_reply=get.reply("unknown_reply", defaults.unknown_reply),
        spam_share=get.share("spam_share"),
        spam_reply=get.reply("spam_reply", defaults.spam_reply),
        spam_stage=stage,
        tempfail_reply=get.reply("tempfail_reply", defaults.tempfail_reply),
        drop_share=get.share("drop_share"),
        reply_delay=get.number("reply_delay", 0.0, 0.0, 60.0),
        data_delay=get.number("data_delay", 0.0, 0.0, 600.0),
        fault=fault,
        fault_stage=fault_stage,
        per_connection=get.limit("per_connection"),
        per_minute=get.limit("per_minute"),
        per_recipient=get.limit("per_recipient"),
        max_connections=get.limit("max_connections"),
    )


class _Getter:
    """Typed reads of one profile table, each error naming file, profile and key."""

    def __init__(self, where: str, raw: dict[str, Any]) -> None:
        self.where = where
        self.raw = raw

    def _fail(self, key: str, problem: str) -> ProfileError:
        return ProfileError(f"{self.where}: key {key!r}: {problem}")

    def _typed(self, key: str, kinds: tuple[type, ...], expected: str) -> Any:
        value = self.raw[key]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise self._fail(key, f"expected {expected}, got {type(value).__name__} {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.raw:
            return default
        value: bool = self._typed(key, (bool,), "true or false")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        if key not in self.raw:
            return default
        value = float(self._typed(key, (int, float), "a number"))
        if not low <= value <= high:
            raise self._fail(key, f"must be within {low:g}..{high:g}, got {value:g}")
        return value

    def share(self, key: str) -> float:
        return self.number(key, 0.0, 0.0, 1.0)

    def text(self, key: str, default: str | None, *, hostname: bool = False) -> str | None:
        if key not in self.raw:
            return default
        value: str = self._typed(key, (str,), "a string")
        if not value or not _TEXT.fullmatch(value):
            raise self._fail(key, "must be non-empty printable ASCII on one line")
        if hostname and not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", value):
            raise self._fail(key, f"not a host name: {value!r}")
        return value

    def template(self, key: str, default: str | None) -> str | None:
        value = self.text(key, default)
        if value is not None:
            self._placeholders(key, value)
        return value

    def _placeholders(self, key: str, value: str) -> None:
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise self._fail(key, f"bad braces ({exc}); write {{{{ }}}} for literal ones") from None
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in PLACEHOLDERS or spec or conversion:
                known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                raise self._fail(key, f"unknown placeholder {{{name}}} (known: {known})")

    def reply(self, key: str, default: str, value: object = None, label: str | None = None) -> str:
        label = label or key
        if value is None:
            if key not in self.raw:
                return default
            value = self.raw[key]
        if not isinstance(value, str):
            raise self._fail(label, f"expected a reply string, got {type(value).__name__}")
        match = _REPLY.fullmatch(value)
        if match is None:
            raise self._fail(label, f'expected "<code> <text>" in printable ASCII, got {value!r}')
        low, high = _REPLY_CODES[key]
        code = int(match.group(1))
        if not low <= code <= high:
            allowed = str(low) if low == high else f"{low}..{high}"
            raise self._fail(label, f"reply code must be {allowed}, got {code}")
        if len(value) > MAX_REPLY_CHARS:
            raise self._fail(label, f"longer than {MAX_REPLY_CHARS} characters")
        self._placeholders(label, value)
        return value

    def domains(self, *, required: bool) -> tuple[str, ...]:
        raw = self.raw.get("domains", [])
        if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
            raise self._fail("domains", "expected a list of domain strings")
        if required and not raw:
            raise self._fail("domains", "a profile that is not the catch-all needs domains")
        out: list[str] = []
        for domain in raw:
            try:
                name = normalize_domain(domain)
            except ValueError as exc:
                raise self._fail("domains", f"invalid domain {domain!r}: {exc}") from None
            if "." not in name or name in out:
                raise self._fail("domains", f"invalid or repeated domain {domain!r}")
            out.append(name)
        return tuple(out)

    def limit(self, key: str) -> Limit | None:
        if key not in self.raw:
            return None
        table = self.raw[key]
        if not isinstance(table, dict):
            raise self._fail(key, f"expected a table with limit and reply ([...{key}])")
        extra = sorted(set(table) - {"limit", "reply"})
        if extra:
            raise self._fail(f"{key}.{extra[0]}", "unknown key (known keys: limit, reply)")
        if "limit" not in table or "reply" not in table:
            raise self._fail(key, "needs both `limit` and `reply`")
        limit = table["limit"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise self._fail(f"{key}.limit", f"expected a whole number >= 0, got {limit!r}")
        reply = self.reply(key, "", table["reply"], label=f"{key}.reply")
        return Limit(limit, reply) if limit else None


def in_share(salt: str, local_part: str, share: float) -> bool:
    """Whether a local part falls in `share` of all local parts; stable across runs."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{salt}:{local_part.lower()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


# -- one simulated MP ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    mail_from: str
    rcpt_to: str
    data: bytes
    helo: str = ""
    """The sender's EHLO name: which engine delivered this copy."""
    tls: bool = False
    at: float = 0.0
    """When it was accepted, on the server's clock."""


@dataclass(slots=True)
class MPState:
    keep_messages: bool = True
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    rcpt_attempts: Counter[str] = field(default_factory=Counter)
    peers: set[tuple[str, int]] = field(default_factory=set)
    helo_names: Counter[str] = field(default_factory=Counter)  # EHLO/HELO name -> RCPTs
    queue_ids: itertools.count[int] = field(default_factory=itertools.count)
    connections: Counter[str] = field(default_factory=Counter)  # open now, per client IP
    events: Counter[str] = field(default_factory=Counter)  # simulated refusals, by kind


class _RateWindow:
    """Events per key over the last minute: what a per-minute limit looks at.

    Each key keeps only the times of its last minute, and keys whose minute has
    passed are swept out, so memory follows the traffic of the last minute.
    """

    def __init__(self, span: float = RATE_WINDOW_SECONDS) -> None:
        self.span = span
        self._events: dict[str, deque[float]] = {}
        self._sweep_above = 1024

    def count(self, key: str, now: float) -> int:
        times = self._events.get(key)
        if not times:
            return 0
        cutoff = now - self.span
        while times and times[0] <= cutoff:
            times.popleft()
        return len(times)

    def add(self, key: str, now: float) -> None:
        self._events.setdefault(key, deque()).append(now)
        if len(self._events) > self._sweep_above:
            cutoff = now - self.span
            self._events = {k: t for k, t in self._events.items() if t and t[-1] > cutoff}
            self._sweep_above = max(1024, 2 * len(self._events))


def _peer_ip(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    return str(peer[0]) if isinstance(peer, tuple) else str(peer or "")


def _forced(local: str) -> bool:
    return local.startswith(_FORCED_PREFIXES)


class MPHandler:
    def __init__(
        self,
        state: MPState,
        profile: Profile,
        hostname: str,
        clock: Callable[[], float],
        rng: random.Random,
        reporter: Reporter | None = None,
        on_accept: Callable[[Received], None] | None = None,
    ) -> None:
        self.reporter = reporter
        self.on_accept = on_accept
        self.state = state
        self.profile = profile
        self.hostname = hostname
        self.clock = clock
        self.rng = rng
        self.per_ip = _RateWindow()
        self.per_rcpt = _RateWindow()

    def fill(self, template: str, ip: str = "", rcpt: str = "") -> str:
        if "{" not in template:
            return template
        queue_id = f"{next(self.state.queue_ids):08X}" if "{id}" in template else ""
        return template.format(
            ip=ip, rcpt=rcpt, host=self.hostname, id=queue_id, time=int(time.time())
        )

    def _refuse(self, server: SMTP, kind: str, template: str, rcpt: str = "") -> str:
        self.state.events[kind] += 1
        reply = self.fill(template, _peer_ip(server.session), rcpt)
        # RFC 5321 §3.8: a 421 closes the channel. The tempfail* reply never did: kept so.
        if reply.startswith("421") and kind != "tempfail" and isinstance(server, _ProfileSMTP):
            server.close_after_reply = True
        return reply

    # Connections ------------------------------------------------------------------------

    def connect(self, ip: str) -> str | None:
        """Count a new connection from ip; the greeting's refusal if there are too many."""
        limit = self.profile.max_connections
        if limit is not None and self.state.connections[ip] >= limit.limit:
            self.state.events["max_connections"] += 1
            return self.fill(limit.reply, ip)
        self.state.connections[ip] += 1
        return None

    def disconnect(self, ip: str) -> None:
        self.state.connections[ip] -= 1
        if self.state.connections[ip] <= 0:
            del self.state.connections[ip]

    # SMTP hooks -------------------------------------------------------------------------

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        profile = self.profile
        per_connection = profile.per_connection
        transactions = server.transactions if isinstance(server, _ProfileSMTP) else 0
        if per_connection is not None and transactions >= per_connection.limit:
            return self._refuse(server, "per_connection", per_connection.reply)
        per_minute = profile.per_minute
        ip = _peer_ip(session)
        if per_minute is not None and self.per_ip.count(ip, self.clock()) >= per_minute.limit:
            return self._refuse(server, "per_minute", per_minute.reply)
        if isinstance(server, _ProfileSMTP):
            server.transactions += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local = address.rpartition("@")[0].lower()
        key = address.lower()
        self.state.rcpt_attempts[key] += 1
        if isinstance(session.peer, tuple):
            self.state.peers.add(session.peer)
        self.state.helo_names[session.host_name or ""] += 1
        profile = self.profile
        if local.startswith("unknown") or (
            not _forced(local) and in_share("unknown", local, profile.unknown_share)
        ):
            return self._refuse(server, "unknown", profile.unknown_reply, address)
        if profile.spam_stage == "rcpt" and self._spam(address):
            return self._refuse(server, "spam", profile.spam_reply, address)
        if local.startswith("tempfail") and self.state.rcpt_attempts[key] == 1:
            return self._refuse(server, "tempfail", profile.tempfail_reply, address)
        per_recipient = profile.per_recipient
        if per_recipient and self.per_rcpt.count(key, self.clock()) >= per_recipient.limit:
            return self._refuse(server, "per_recipient", per_recipient.reply, address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    def _spam(self, address: str) -> bool:
        local = address.rpartition("@")[0].lower()
        if local.startswith("spam"):
            return True
        return not _forced(local) and in_share("spam", local, self.profile.spam_share)

    def _report_later(self, mail_from: str, rcpt: str, content: bytes, ip: str) -> None:
        """`bounce*` recipients bounce and `complain*` ones report spam, some seconds on."""
        local = rcpt.rpartition("@")[0].lower()
        if self.reporter is None or not mail_from:
            return
        if local.startswith("bounce"):
            self.reporter.later(mail_from, build_dsn(self.hostname, mail_from, rcpt, content))
        elif local.startswith("complain"):
            self.reporter.later(mail_from, build_arf(self.hostname, mail_from, rcpt, ip, content))

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        profile = self.profile
        if profile.fault in ("stall", "garbage") and profile.fault_stage == "dot":
            return await _fault(server)
        if profile.data_delay > 0:
            # Content scanning. A connection lost meanwhile cancels this handler:
            # the message was never accepted, as at a real MP.
            await asyncio.sleep(profile.data_delay)
        if any(r.lower().startswith("drop") for r in envelope.rcpt_tos) or (
            profile.drop_share > 0 and self.rng.random() < profile.drop_share
        ):
            self.state.events["drop"] += 1
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()
            return "451 4.3.0 dropped"
        if profile.spam_stage == "data":
            spam = [r for r in envelope.rcpt_tos if self._spam(r)]
            if spam:
                return self._refuse(server, "spam", profile.spam_reply, spam[0])
        now = self.clock()
        content = envelope.original_content or b""
        for rcpt in envelope.rcpt_tos:
            self._report_later(envelope.mail_from or "", rcpt, content, _peer_ip(session))
            self.state.accepted += 1
            copy = Received(
                envelope.mail_from or "",
                rcpt,
                content,
                session.host_name or "",
                session.ssl is not None,
                now,
            )
            if self.state.keep_messages:
                self.state.received.append(copy)
            if self.on_accept is not None:
                self.on_accept(copy)
            if profile.per_recipient is not None:
                self.per_rcpt.add(rcpt.lower(), now)
        if profile.per_minute is not None:
            self.per_ip.add(_peer_ip(session), now)
        return self.fill(profile.accept_reply, _peer_ip(session))


async def _fault(server: SMTP) -> str:
    """Play the profile's fault where it strikes: what a garbage MP says there; the
    other faults never return (the connection's end cancels them)."""
    assert isinstance(server, _ProfileSMTP)
    fault = server.sim.profile.fault or ""
    server.sim.state.events[fault] += 1
    if fault == "garbage":
        return GARBAGE_REPLY
    if fault == "bad_tls":
        # Says yes, then answers the client's TLS hello with bytes that are not TLS.
        await server.push("220 2.0.0 Ready to start TLS")
        await server._reader.read(1)
        server._writer.write(b"\x00" * 64)
        await server._writer.drain()
    elif fault == "drop_in_data":
        await server.push("354 End data with <CR><LF>.<CR><LF>")
        await server._reader.readuntil(b"\r\n")  # part of the message is here
    if fault != "stall" and isinstance(server.transport, asyncio.Transport):
        server.transport.abort()
    # A stall never answers; a cut connection reads no more of what was sent. Either
    # way the session ends here, when the connection is gone.
    never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    return await never


class _ProfileSMTP(SMTP):
    """aiosmtpd's SMTP session with the profile's greeting gate, reply delay, 421 close
    and fault."""

    def __init__(
        self,
        handler: MPHandler,
        *,
        hostname: str,
        ident: str,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(handler, hostname=hostname, ident=ident, tls_context=tls_context)
        self.sim = handler
        self.ident_template = ident
        self.transactions = 0
        self.close_after_reply = False
        profile = handler.profile
        verbs = {
            "stall": _STAGE_VERBS.get(profile.fault_stage, ()),
            "garbage": _STAGE_VERBS.get(profile.fault_stage, ()),
            "bad_tls": ("STARTTLS",),
            "drop_in_data": ("DATA",),
        }.get(profile.fault or "", ())
        for verb in verbs:
            self._smtp_methods[verb] = self._faulty

    async def _faulty(self, arg: str | None) -> None:
        await self.push(await _fault(self))

    async def push(self, status: AnyStr) -> None:
        delay = self.sim.profile.reply_delay
        if delay > 0:
            await asyncio.sleep(delay)
        if self.sim.profile.fault == "tarpit":
            await self._dribble(status.encode("ascii") if isinstance(status, str) else status)
        else:
            await super().push(status)
        if self.close_after_reply and self.transport is not None:
            self.transport.close()

    async def _dribble(self, reply: bytes) -> None:
        for byte in reply + b"\r\n":
            self._writer.write(bytes([byte]))
            await self._writer.drain()
            await asyncio.sleep(TARPIT_SECONDS_PER_BYTE)

    async def _handle_client(self) -> None:
        ip = _peer_ip(self.session)
        refusal = self.sim.connect(ip)
        if refusal is not None:
            self.close_after_reply = True
            await self.push(refusal)
            return
        profile = self.sim.profile
        if profile.fault == "tarpit":
            self.sim.state.events["tarpit"] += 1
        try:
            if profile.fault in ("stall", "garbage") and profile.fault_stage == "greeting":
                await self.push(await _fault(self))  # garbage for a greeting
                await asyncio.Future()  # then nothing, until the client leaves
            # aiosmtpd greets with "220 <hostname> <__ident__>" (no name mangling: dunder).
            self.__ident__ = self.sim.fill(self.ident_template, ip)
            await super()._handle_client()
        finally:
            self.sim.disconnect(ip)


class MPServer:
    """One simulated MP on 127.0.0.1, in the running event loop.

    Without a profile it accepts everything but the forced local parts, as a
    plain MP; `clock` (monotonic seconds) and `rng` drive the per-minute limits
    and the dropped-connection share, so tests can set both. With `tls_context`
    it offers STARTTLS; `on_accept` sees each accepted copy as it is accepted.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        keep_messages: bool = True,
        name: str | None = None,
        profile: Profile | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        reporter: Reporter | None = None,
        tls_context: ssl.SSLContext | None = None,
        on_accept: Callable[[Received], None] | None = None,
    ) -> None:
        self.reporter = reporter
        self.on_accept = on_accept
        self.requested_port = port
        self.name = name or (profile.name if profile is not None else "mp")
        self.profile = profile if profile is not None else Profile(name=self.name)
        self.hostname = self.profile.hostname or f"{self.name}.simulator"
        self.state = MPState(keep_messages=keep_messages)
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        if tls_context is None and self.profile.fault == "bad_tls":
            # Only to offer STARTTLS: the fault answers it without a certificate.
            tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls_context = tls_context
        self._server: asyncio.Server | None = None
        self._closed_port: socket.socket | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    async def start(self) -> MPServer:
        if self.profile.fault == "refuse":
            # Bound, never listening: the port stays ours, and every connection to it
            # is refused (RST) as at an MX host whose SMTP server is down.
            self._closed_port = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._closed_port.bind(("127.0.0.1", self.requested_port))
            return self
        handler = MPHandler(
            self.state,
            self.profile,
            self.hostname,
            self.clock,
            self.rng,
            self.reporter,
            self.on_accept,
        )
        ident = self.profile.ident or self.name

        def protocol() -> SMTP:
            smtp = _ProfileSMTP(
                handler, hostname=self.hostname, ident=ident, tls_context=self.tls_context
            )
            self._sessions.add(smtp)
            return smtp

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, host="127.0.0.1", port=self.requested_port, backlog=256
        )
        return self

    @property
    def port(self) -> int:
        sock = self._server.sockets[0] if self._server is not None else self._closed_port
        assert sock is not None
        return int(sock.getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening and cut every open connection, as an MP going down does.

        Server.wait_closed() waits for every connection to end, so a client
        that keeps its connection open would otherwise hold the stop forever.
        """
        if self._closed_port is not None:
            self._closed_port.close()
            self._closed_port = None
        if self._server is None:
            return
        self._server.close()
        for smtp in list(self._sessions):
            if isinstance(smtp.transport, asyncio.Transport):
                smtp.transport.abort()
        await self._server.wait_closed()
        self._server = None


# -- all of them ---------------------------------------------------------------------------


class Simulator:
    """One MPServer per profile, on consecutive ports from `base_port` (0: free ports).

    `ports` pins some profiles (by name) to a port, as a restarted simulator
    does to keep the ports its routes file already gave out.
    """

    def __init__(
        self,
        profiles: Sequence[Profile] | None = None,
        *,
        base_port: int = 0,
        ports: Mapping[str, int] | None = None,
        keep_messages: bool = False,
        clock: Callable[[], float] = time.monotonic,
        reporter: Reporter | None = None,
    ) -> None:
        self.reporter = reporter
        self.profiles = list(profiles) if profiles is not None else load_profiles()
        self.base_port = base_port
        self.ports = dict(ports or {})
        self.keep_messages = keep_messages
        self.clock = clock
        self.servers: dict[str, MPServer] = {}

    async def start(self) -> Simulator:
        try:
            for i, profile in enumerate(self.profiles):
                port = self.ports.get(profile.name) or (self.base_port + i if self.base_port else 0)
                server = MPServer(
                    port,
                    keep_messages=self.keep_messages,
                    profile=profile,
                    clock=self.clock,
                    reporter=self.reporter,
                )
                self.servers[profile.name] = await server.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        servers, self.servers = list(self.servers.values()), {}
        for server in servers:
            await server.stop()
        if self.reporter is not None:
            await self.reporter.close()

    def routes(self) -> dict[str, str]:
        """Every profile domain (and "*" for the catch-all) -> "127.0.0.1:port"."""
        routes: dict[str, str] = {}
        for profile in self.profiles:
            address = self.servers[profile.name].address
            for domain in profile.domains:
                routes[domain] = address
        for profile in self.profiles:
            if profile.catch_all:
                routes["*"] = self.servers[profile.name].address
        return routes

    def describe(self) -> list[str]:
        """One line per running profile: name, address, domains."""
        lines = []
        for profile in self.profiles:
            served = [*profile.domains, *(["* (every other domain)"] if profile.catch_all else [])]
            address = self.servers[profile.name].address
            state = "refusing connections" if profile.fault == "refuse" else "listening"
            lines.append(f"MP simulator {profile.name} {state} on {address}: {', '.join(served)}")
        return lines


def write_routes(path: Path, routes: Mapping[str, str]) -> None:
    """A routes file (MAILPULSE_ROUTES) for `routes`, replaced atomically."""
    lines = [
        "# Written by `mailpulse simulate`: each domain to its simulated MP on 127.0.0.1.",
        "[routes]",
        *(f'"{domain}" = "{address}"' for domain, address in routes.items()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def ports_from_routes(path: Path, profiles: Sequence[Profile]) -> dict[str, int]:
    """The port each profile had in a routes file written by `write_routes` (if any)."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("routes")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    if not isinstance(table, dict):
        return {}
    ports: dict[str, int] = {}
    for profile in profiles:
        for key in [*profile.domains, *(["*"] if profile.catch_all else [])]:
            host, _, port = str(table.get(key, "")).rpartition(":")
            if host == "127.0.0.1" and port.isdigit() and 0 < int(port) < 65536:
                ports[profile.name] = int(port)
                break
    return ports
