"""The four suppression lists and the exemptions that stop a send before it is attempted.

The bounce list is global (SPEC B1); blocks, spam reports (complaints),
unsubscribes and exemptions belong to an account, each entry optionally
scoped to one API_USER. An entry's key is the lower-cased address (domain in
A-label form) or `@domain` for a domain-wide entry; an API_USER-scoped entry
appends a tab and the API_USER.

Every list is split into `BUCKETS` pairs of small Redis structures: a sorted
set member → expiry (what checks read and what the pruner walks) and a hash
member → details. Small buckets stay in Redis's compact encoding, which keeps
a million-entry list near 100 bytes per entry; a third sorted set indexes the
non-empty buckets so listing a small list does not walk thousands of empty
ones. Keys of one scope share a hash tag: a whole batch check is one Lua call
per scope, on Redis Cluster too.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.typing import EncodableT, FieldT

from queue_engine import keys
from queue_engine.addresses import AddressError, normalise_domain, parse_address
from queue_engine.records import iso
from queue_engine.statuses import InvalidReason

_HERE = Path(__file__).parent
_KIND_LUA = (_HERE / "suppression_kind.lua").read_text()

BUCKETS = 65536
"""At a million entries about 15 per bucket: compact (listpack) and still quick to scan,
since a compact sorted set answers ZSCORE by a linear scan."""

NO_EXPIRY_MS = 253402300799000
"""9999-12-31T23:59:59Z: the score of an entry that never expires (a finite float in Lua)."""

FILTER_MIN_ENTRIES = 1 << 17
"""A list this large gets a filter (suppression_filter.lua): at 2 bytes per entry it
spares a check the ZSCORE of most misses. Smaller lists sit in few enough buckets to
stay in the CPU's caches; a filter is dropped once its list falls under a quarter of it."""

FILTER_BITS_PER_ENTRY = 16
"""About 6 % of misses still look the list up when the filter is built, 12 % when the
entries it has marked (adds since, removed ones included) reach an eighth of its bits:
then it is rebuilt, to the list's size then."""

FILTER_MAX_BITS = 1 << 30
FILTER_LOCK_SECONDS = 900
"""One build per list at a time, over all engines; a build takes seconds per million."""

DAY_MS = 86_400_000
COMPLAINT_DAYS = 180
MAX_REASON = 200
ADD_CHUNK = 1000
LOG_LENGTH = 10_000
LOGGED_PER_CALL = 100
"""A 100,000-line upload is logged as its first entries and a count, not line by line."""

TENCENT_DOMAINS = frozenset(
    {"qq.com", "vip.qq.com", "foxmail.com", "exmail.qq.com", "tencent.com", "wechat.com"}
)
"""QQ Mail and Tencent Exmail's own domains; other domains count when their MX is Tencent's."""


class SuppressionList(StrEnum):
    BOUNCES = "bounces"
    BLOCKS = "blocks"
    COMPLAINTS = "complaints"
    UNSUBSCRIBES = "unsubscribes"
    EXEMPTIONS = "exemptions"


ACCOUNT_LISTS = (
    SuppressionList.BLOCKS,
    SuppressionList.COMPLAINTS,
    SuppressionList.UNSUBSCRIBES,
    SuppressionList.EXEMPTIONS,
)


_BOUNCE_LISTS = SuppressionList.BOUNCES.value
_ACCOUNT_LISTS = ",".join(ACCOUNT_LISTS)
_LISTS = {kind.value: kind for kind in SuppressionList}
"""A check's answers name lists by value; a dict reads them faster than the enum's call."""


class UnsubscribeReason(StrEnum):
    """SPEC U2's four reasons, and none when the recipient used one-click (RFC 8058)."""

    NOT_GIVEN = "not_given"
    UNWANTED = "unwanted"
    NEVER_SUBSCRIBED = "never_subscribed"
    SPAM = "spam"
    FRAUD = "fraud"


UNSUBSCRIBE_WORDING = {
    UnsubscribeReason.NOT_GIVEN: "No reason given (one-click unsubscribe)",
    UnsubscribeReason.UNWANTED: "I don't want such emails",
    UnsubscribeReason.NEVER_SUBSCRIBED: "I never subscribed to this",
    UnsubscribeReason.SPAM: "This is spam",
    UnsubscribeReason.FRAUD: "This is fraud and I want to report it",
}


class Origin(StrEnum):
    """Who put an entry on a list (or took it off): kept with the entry."""

    MP = "mp"
    DSN = "dsn"
    ARF = "arf"
    RECIPIENT = "recipient"
    API = "api"
    CONSOLE = "console"


_ORIGIN_LETTERS = {
    Origin.MP: "m",
    Origin.DSN: "d",
    Origin.ARF: "f",
    Origin.RECIPIENT: "r",
    Origin.API: "a",
    Origin.CONSOLE: "c",
}
"""Stored as one letter: a million-entry list is a million copies of it."""
_ORIGIN_NAMES = {letter: origin.value for origin, letter in _ORIGIN_LETTERS.items()}

_REPLY_CODE = re.compile(r"\b([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?\b")


def reply_code(reply: str) -> str:
    """What a bounce entry keeps of the MP's reply: its codes ("550 5.1.1"). The whole
    reply stays on the email's record; a million copies of it would not fit the budget."""
    found = _REPLY_CODE.search(reply)
    if found is None:
        return reply[:32]
    return " ".join(part for part in found.groups() if part)


BLOCK_TEXT = {
    SuppressionList.BOUNCES: "Blacklist: Bounce (worker:address in bounce list)",
    SuppressionList.COMPLAINTS: "Blacklist: Spam Report (worker:address in complaint list)",
    SuppressionList.BLOCKS: "Blacklist: Custom Block (worker:address in block list)",
    SuppressionList.UNSUBSCRIBES: "Unsubscribed (worker:address in unsubscribe list)",
}
"""The MP-reply text of a blocked send, per list (SPEC B2, P3, C2)."""

_PRECEDENCE = (
    SuppressionList.BLOCKS,
    SuppressionList.COMPLAINTS,
    SuppressionList.BOUNCES,
    SuppressionList.UNSUBSCRIBES,
)
"""Which list a blocked send names when several match: the sender's own choice first."""


def bounce_days(count: int, tencent: bool) -> int:
    """SPEC B3: days an address stays on the bounce list after its count-th bounce."""
    if tencent:
        return int(min(2 ** (count - 1), 30))
    return {1: 30, 2: 60}.get(count, 180)


def _law(tencent: bool) -> str:
    """The B3 table as the Lua script reads it: days for counts 1, 2, ... (last repeats)."""
    days = [bounce_days(n, tencent) for n in range(1, 8)]
    while len(days) > 1 and days[-1] == days[-2]:
        days.pop()
    return ",".join(map(str, days))


def is_tencent_mx(hosts: Iterable[str]) -> bool:
    return any(
        h.rstrip(".").lower() == "qq.com" or h.rstrip(".").lower().endswith(".qq.com")
        for h in hosts
    )


async def is_tencent(domain: str, mx_hosts: Callable[[str], Awaitable[list[str]]]) -> bool:
    """Tencent mail, for the bounce law: its own domains, or a domain whose MX is Tencent's."""
    return domain.lower() in TENCENT_DOMAINS or is_tencent_mx(await mx_hosts(domain))


_MASK = BUCKETS - 1


def member_hash(member: str) -> int:
    """CRC-32 of an entry's address or domain: an API_USER-scoped entry shares its
    address's bucket and filter bit, where the check looks it up."""
    return zlib.crc32(member.split("\t", 1)[0].encode())


def bucket(member: str) -> int:
    return member_hash(member) & _MASK


class EntryError(ValueError):
    """An entry the API refuses; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def normalise_target(value: str) -> str:
    """An address → its list key; `@domain` or a bare domain → `@` + the A-label domain."""
    if not isinstance(value, str) or not value.strip():
        raise EntryError("address", "must be an address or a domain")
    text = value.strip()
    if "@" not in text or text.startswith("@"):
        try:
            return "@" + normalise_domain(text.lstrip("@"))
        except AddressError as exc:
            raise EntryError("domain", f"is not a valid domain: {exc}") from None
    try:
        address = parse_address(text)
    except AddressError as exc:
        raise EntryError("address", f"is not a valid address: {exc}") from None
    return address.email.lower()


@dataclass(frozen=True, slots=True)
class Entry:
    list: SuppressionList
    target: str
    """The address, or `@domain`."""
    api_user: str | None
    reason: str
    origin: str
    created_ms: int
    expires_ms: int | None
    count: int

    @property
    def is_domain(self) -> bool:
        return self.target.startswith("@")

    def to_api(self) -> dict[str, Any]:
        where = {"domain": self.target[1:]} if self.is_domain else {"address": self.target}
        return {
            **where,
            "list": self.list.value,
            "api_user": self.api_user,
            "reason": self.reason,
            "origin": self.origin,
            "created_at": iso(self.created_ms),
            "expires_at": iso(self.expires_ms),
            "count": self.count,
        }


def _entry(kind: SuppressionList, member: str, expiry: str, details: str) -> Entry:
    target, _, scope = member.partition("\t")
    created, count, origin, api_user, reason = [*details.split("|", 4), "", "", "", ""][:5]
    expires = int(float(expiry))
    return Entry(
        list=kind,
        target=target,
        api_user=scope or api_user or None,
        reason=reason,
        origin=_ORIGIN_NAMES.get(origin, origin),
        created_ms=int(created or 0) * 1000,
        expires_ms=None if expires >= NO_EXPIRY_MS else expires,
        count=int(count or 1),
    )


@dataclass(frozen=True, slots=True)
class Block:
    """Why a send to one recipient is not attempted."""

    list: SuppressionList
    until_ms: int | None

    @property
    def reason(self) -> InvalidReason:
        if self.list is SuppressionList.UNSUBSCRIBES:
            return InvalidReason.UNSUBSCRIBED
        return InvalidReason.BLACKLIST

    @property
    def text(self) -> str:
        return BLOCK_TEXT[self.list]


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class ListFilter:
    address: str = ""
    domain: str = ""
    api_user: str = ""
    include_unscoped: bool = True
    created_from_ms: int | None = None
    created_before_ms: int | None = None


class Suppressions:
    """The lists' public API: checks, adds, removals, listing and pruning."""

    def __init__(self, redis: Redis, clock: Any = time.time) -> None:
        self.redis = redis
        self.clock = clock
        self._cluster = isinstance(redis, RedisCluster)
        self._check = redis.register_script((_HERE / "suppression_check.lua").read_text())
        self._add = redis.register_script(_KIND_LUA + (_HERE / "suppression_add.lua").read_text())
        self._remove = redis.register_script(
            _KIND_LUA + (_HERE / "suppression_remove.lua").read_text()
        )
        self._list = redis.register_script((_HERE / "suppression_list.lua").read_text())
        self._filter = redis.register_script((_HERE / "suppression_filter.lua").read_text())
        self.filter_min_entries = FILTER_MIN_ENTRIES

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- checks -------------------------------------------------------------------------

    async def check(
        self, account: str, api_user: str, recipients: Sequence[str], now_ms: int | None = None
    ) -> list[Block | None]:
        """Per recipient (a normalised address), what blocks it; one round trip for all."""
        if not recipients:
            return []
        results = await self._lookups(account, [api_user], False, recipients, now_ms)
        # Most recipients match nothing: only the matches are looked at.
        hits: dict[int, dict[SuppressionList, str]] = {}
        for found in results:
            for i in range(0, len(found), 3):
                hits.setdefault(found[i] - 1, {})[_LISTS[found[i + 1]]] = found[i + 2]
        blocks: list[Block | None] = [None] * len(recipients)
        for index, matched in hits.items():
            blocks[index] = _first_block(matched)
        return blocks

    async def entries_for(self, account: str, api_users: Sequence[str], target: str) -> list[Entry]:
        """Every active entry that matches an address (or `@domain`), with details: the
        lookup behind `GET /v1/suppressions/check`."""
        results = await self._lookups(account, api_users or [""], True, [target])
        matches: dict[tuple[str, str], str] = {}
        for found in results:
            for j in range(0, len(found), 4):
                matches[(found[j + 1], found[j + 2])] = found[j + 3]
        return await self._details(account, matches)

    async def check_address(
        self, account: str, api_users: Sequence[str], target: str
    ) -> dict[str, Any]:
        """Which lists block an address (or `@domain`), why and until when: the answer of
        `GET /v1/suppressions/check` and of the console's check box. An exemption lifts
        the bounce list only."""
        entries = await self.entries_for(account, api_users, target)
        exempt = any(e.list is SuppressionList.EXEMPTIONS for e in entries)
        blocked = any(
            e.list is not SuppressionList.EXEMPTIONS
            and not (e.list is SuppressionList.BOUNCES and exempt)
            for e in entries
        )
        return {
            "address": target[1:] if target.startswith("@") else target,
            "blocked": blocked,
            "exempt": exempt,
            "entries": [e.to_api() for e in entries],
        }

    async def _details(self, account: str, matches: dict[tuple[str, str], str]) -> list[Entry]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind, member in matches:
                scope = (
                    keys.BOUNCE_SCOPE
                    if kind == SuppressionList.BOUNCES
                    else keys.suppression_scope(account)
                )
                pipe.hget(_key(scope, kind, "h", bucket(member)), member)
            details = await pipe.execute()
        return [
            _entry(SuppressionList(kind), member, expiry, d or "")
            for ((kind, member), expiry), d in zip(matches.items(), details, strict=True)
        ]

    async def _lookups(
        self,
        account: str,
        api_users: Sequence[str],
        every: bool,
        recipients: Sequence[str],
        now_ms: int | None = None,
    ) -> list[list[Any]]:
        """suppression_check.lua over the bounce scope and the account's: one call on one
        Redis; on a cluster, where the scopes' hash tags put them on different nodes, a call
        per scope, concurrently. Called directly, not in a pipeline: a pipeline holding a
        script first asks Redis whether the script exists, a second round trip per check."""
        now = self.now_ms() if now_ms is None else now_ms
        addresses, domains = _recipient_lines(recipients)
        flag = "1" if every else "0"
        bounce, own = (
            keys.suppression_meta(keys.BOUNCE_SCOPE),
            keys.suppression_meta(keys.suppression_scope(account)),
        )
        groups = (
            [([bounce], _BOUNCE_LISTS), ([own], _ACCOUNT_LISTS)]
            if self._cluster
            else [([bounce, own], f"{_BOUNCE_LISTS};{_ACCOUNT_LISTS}")]
        )
        calls = [
            self._check(keys=metas, args=[now, api_user, flag, lists, addresses, domains])
            for api_user in api_users
            for metas, lists in groups
        ]
        if len(calls) == 1:
            return [await calls[0]]
        return list(await asyncio.gather(*calls))

    # -- adding ---------------------------------------------------------------------------

    async def add_bounces(
        self,
        addresses: Sequence[tuple[str, bool, str]],
        origin: Origin,
        now_ms: int | None = None,
        pipe: Pipeline | None = None,
    ) -> list[tuple[int, int]] | None:
        """(address, is Tencent mail, MP reply) → (count N, expiry ms) each, per SPEC B3.

        Given a pipeline, the call joins it and returns None (the caller executes it).
        """
        if not addresses:
            return []
        now = self.now_ms() if now_ms is None else now_ms
        items: list[str | int] = []
        for address, tencent, reason in addresses:
            member = address.lower()
            items += [
                member,
                member_hash(member),
                "law:t" if tencent else "law:o",
                _ORIGIN_LETTERS[origin],
                "",
                reply_code(reason),
            ]
        call_args: list[str | int] = [
            now,
            SuppressionList.BOUNCES.value,
            "refresh",
            _law(True),
            _law(False),
        ]
        meta = keys.suppression_meta(keys.BOUNCE_SCOPE)
        if pipe is not None:
            await self._add(keys=[meta], args=[*call_args, *items], client=pipe)
            return None
        out = await self._add(keys=[meta], args=[*call_args, *items])
        return [(int(count), int(expiry)) for _, count, expiry in out]

    async def add(
        self,
        account: str,
        kind: SuppressionList,
        items: Sequence[tuple[str, str | None, int | None, str]],
        origin: Origin,
        now_ms: int | None = None,
    ) -> list[bool]:
        """(target, API_USER or None, expiry ms or None, reason) → whether each is new.

        Targets must already be normalised (`normalise_target`). Any number of items:
        they go to Redis `ADD_CHUNK` at a time, so a 100,000-line upload never holds
        Redis for long.
        """
        assert kind is not SuppressionList.BOUNCES
        now = self.now_ms() if now_ms is None else now_ms
        mode = "refresh" if kind is SuppressionList.COMPLAINTS else "upsert"
        scope = keys.suppression_scope(account)
        members: list[str] = []
        fresh: list[bool] = []
        for start in range(0, len(items), ADD_CHUNK):
            args: list[str | int] = [now, kind.value, mode, "", ""]
            for target, api_user, expires, reason in items[start : start + ADD_CHUNK]:
                # A complaint belongs to the account (the sender's own blacklist) whichever
                # API_USER sent the email; the reporter's API_USER is kept in the details.
                scoped = api_user and kind is not SuppressionList.COMPLAINTS
                member = f"{target}\t{api_user}" if scoped else target
                members.append(member)
                args += [
                    member,
                    member_hash(member),
                    NO_EXPIRY_MS if expires is None else expires,
                    _ORIGIN_LETTERS[origin],
                    api_user or "",
                    reason[:MAX_REASON].replace("\n", " "),
                ]
            out = await self._add(keys=[keys.suppression_meta(scope)], args=args)
            fresh += [bool(new) for new, _, _ in out]
        if origin in (Origin.API, Origin.CONSOLE):
            await self._log(scope, "added", kind, members, origin, now)
        return fresh

    async def complain(
        self,
        account: str,
        api_user: str,
        address: str,
        feedback_type: str,
        origin: Origin,
        now_ms: int | None = None,
    ) -> bool:
        """A spam report (ARF): the address is blocked for the account for 180 days."""
        now = self.now_ms() if now_ms is None else now_ms
        expires = now + COMPLAINT_DAYS * DAY_MS
        item = (address.lower(), api_user, expires, feedback_type or "abuse")
        return (await self.add(account, SuppressionList.COMPLAINTS, [item], origin, now))[0]

    async def unsubscribe(
        self,
        account: str,
        api_user: str,
        address: str,
        reason: UnsubscribeReason,
        origin: Origin = Origin.RECIPIENT,
        now_ms: int | None = None,
    ) -> bool:
        """The recipient's unsubscribe; scoped to the API_USER when the account asks so."""
        scope = await self.redis.hget(keys.account(account), "unsubscribe_scope")
        item = (address.lower(), api_user if scope == "api_user" else None, None, reason.value)
        return (await self.add(account, SuppressionList.UNSUBSCRIBES, [item], origin, now_ms))[0]

    # -- removing -------------------------------------------------------------------------

    async def remove(
        self,
        account: str,
        kind: SuppressionList,
        items: Sequence[tuple[str, str | None]],
        origin: Origin = Origin.API,
        now_ms: int | None = None,
    ) -> list[bool]:
        """(target, API_USER or None) → whether each was on the list; each removal is
        logged with its origin (`changes`)."""
        assert kind is not SuppressionList.BOUNCES
        scope = keys.suppression_scope(account)
        meta = keys.suppression_meta(scope)
        members = [
            f"{target}\t{api_user}"
            if api_user and kind is not SuppressionList.COMPLAINTS
            else target
            for target, api_user in items
        ]
        if not members:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in members:
                args: list[str | int] = [kind.value, "0", "members", member, bucket(member)]
                await self._remove(keys=[meta], args=args, client=pipe)
            gone = [bool(removed) for removed, _ in await pipe.execute()]
        now = self.now_ms() if now_ms is None else now_ms
        await self._log(
            scope,
            "removed",
            kind,
            [m for m, g in zip(members, gone, strict=True) if g],
            origin,
            now,
        )
        return gone

    async def _log(
        self,
        scope: str,
        action: str,
        kind: SuppressionList,
        members: Sequence[str],
        origin: Origin,
        now_ms: int,
    ) -> None:
        if not members:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in members[:LOGGED_PER_CALL]:
                target, _, api_user = member.partition("\t")
                fields: dict[FieldT, EncodableT] = {
                    "action": action,
                    "list": kind.value,
                    "entry": target,
                    "api_user": api_user,
                    "origin": origin.value,
                    "time": now_ms,
                }
                pipe.xadd(keys.suppression_log(scope), fields, maxlen=LOG_LENGTH, approximate=True)
            if len(members) > LOGGED_PER_CALL:
                fields = {
                    "action": action,
                    "list": kind.value,
                    "entry": "",
                    "more": len(members) - LOGGED_PER_CALL,
                    "origin": origin.value,
                    "time": now_ms,
                }
                pipe.xadd(keys.suppression_log(scope), fields, maxlen=LOG_LENGTH, approximate=True)
            await pipe.execute()

    async def changes(self, account: str, count: int = 100) -> list[dict[str, str]]:
        """The latest changes people made to the account's lists, newest first."""
        rows = await self.redis.xrevrange(
            keys.suppression_log(keys.suppression_scope(account)), count=count
        )
        return [fields for _, fields in rows]

    async def prune(self, now_ms: int | None = None, buckets_per_call: int = 1024) -> int:
        """Remove expired entries of every list (bounce counts stay); returns how many."""
        now = self.now_ms() if now_ms is None else now_ms
        removed = 0
        for scope, lists in await self._scopes():
            meta = keys.suppression_meta(scope)
            for kind in lists:
                keep = "1" if kind is SuppressionList.BOUNCES else "0"
                first = 0
                while first >= 0:
                    n, first = await self._remove(
                        keys=[meta],
                        args=[kind.value, keep, "expired", now, first, buckets_per_call],
                    )
                    removed += int(n)
        return removed

    async def maintain(self) -> None:
        """The engine's periodic work on the lists: expired entries out, filters fit.
        Every list's size is read in one round trip; only lists whose filter must be
        built or dropped cost more."""
        await self.prune()
        scopes = await self._scopes()
        async with self.redis.pipeline(transaction=False) as pipe:
            for scope, kinds in scopes:
                pipe.hmget(keys.suppression_meta(scope), [f for k in kinds for f in _sizes(k)])
            rows = await pipe.execute()
        for (scope, kinds), row in zip(scopes, rows, strict=True):
            for i, kind in enumerate(kinds):
                if self._filter_step(*(int(n or 0) for n in row[3 * i : 3 * i + 3])):
                    await self.refresh_filter(scope, kind)

    def _filter_step(self, count: int, bits: int, adds: int) -> str | None:
        """What a list's filter needs, from its size, its filter's and the adds since."""
        if count < self.filter_min_entries:
            return "drop" if bits and count < self.filter_min_entries // 4 else None
        return "build" if not bits or (count + adds) * 8 > bits else None

    async def refresh_filter(self, scope: str, kind: SuppressionList) -> bool:
        """Build, rebuild or drop one list's filter as its size asks; True if built.

        Entries added while the build walks the list mark the new filter themselves
        (suppression_add.lua), so no entry can miss its bit.
        """
        meta = keys.suppression_meta(scope)
        count, bits, adds = (int(n or 0) for n in await self.redis.hmget(meta, _sizes(kind)))
        step = self._filter_step(count, bits, adds)
        if step == "drop":
            await self._filter(keys=[meta], args=[kind.value, "drop"])
        if step != "build":
            return False
        lock = f"{keys.suppression_prefix(scope)}{kind}:flock"
        token = secrets.token_hex(8)
        if not await self.redis.set(lock, token, nx=True, ex=FILTER_LOCK_SECONDS):
            return False
        size = min(
            FILTER_MAX_BITS, max(1 << 16, 1 << (count * FILTER_BITS_PER_ENTRY - 1).bit_length())
        )
        await self._filter(keys=[meta], args=[kind.value, "start", size, token])
        target = f"{keys.suppression_prefix(scope)}{kind}:fnew"
        index = f"{keys.suppression_prefix(scope)}{kind}:b"
        first = 0
        while True:
            buckets = await self.redis.zrangebyscore(index, first, "+inf", start=0, num=1024)
            if not buckets:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for b in buckets:
                    pipe.zrange(_key(scope, kind, "z", int(b)), 0, -1)
                members = await pipe.execute()
            marks = self.redis.bitfield(target)
            for found in members:
                for member in found:
                    marks.set("u1", member_hash(member) % size, 1)
            await marks.execute()
            first = int(buckets[-1]) + 1
        built = await self._filter(keys=[meta], args=[kind.value, "finish", token])
        return bool(built)

    async def _scopes(self) -> list[tuple[str, list[SuppressionList]]]:
        scopes = [(keys.BOUNCE_SCOPE, [SuppressionList.BOUNCES])]
        for account in sorted(await self.redis.smembers(keys.ACCOUNTS)):
            scopes.append((keys.suppression_scope(account), list(ACCOUNT_LISTS)))
        return scopes

    # -- listing --------------------------------------------------------------------------

    async def page(
        self,
        account: str | None,
        kind: SuppressionList,
        flt: ListFilter,
        cursor: str | None = None,
        limit: int = 100,
        walk: int = 512,
    ) -> Page:
        """Entries in bucket order; `cursor` (opaque) continues a walk. `account` is None
        only for the global bounce list."""
        scope = keys.BOUNCE_SCOPE if account is None else keys.suppression_scope(account)
        start_bucket, start_member = "0", ""
        if cursor:
            start_bucket, _, start_member = cursor.partition(":")
        if flt.address:
            # One address lives in one bucket: go straight there.
            only = str(bucket(flt.address))
            if int(start_bucket) > int(only):
                return Page([], None)
            start_bucket, walk = only, 1
        args = [
            kind.value,
            self.now_ms(),
            start_bucket,
            start_member,
            limit,
            walk,
            flt.address,
            flt.domain,
            flt.api_user,
            "1" if flt.include_unscoped else "0",
            "" if flt.created_from_ms is None else flt.created_from_ms,
            "" if flt.created_before_ms is None else flt.created_before_ms,
        ]
        out = await self._list(keys=[keys.suppression_meta(scope)], args=args)
        next_bucket, next_member, rest = out[0], out[1], out[2:]
        entries = [_entry(kind, rest[i], rest[i + 1], rest[i + 2]) for i in range(0, len(rest), 3)]
        if flt.address:
            next_bucket = next_bucket if next_member else ""
        return Page(entries, f"{next_bucket}:{next_member}" if next_bucket else None)

    async def iterate(
        self, account: str | None, kind: SuppressionList, flt: ListFilter
    ) -> AsyncIterator[Entry]:
        """Every matching entry, a page at a time (exports)."""
        cursor: str | None = None
        while True:
            page = await self.page(account, kind, flt, cursor, limit=1000, walk=1024)
            for entry in page.entries:
                yield entry
            if page.cursor is None:
                return
            cursor = page.cursor

    async def account_sizes(self, account: str) -> dict[str, int]:
        """Active entries (and expired ones not yet pruned) per list of one account."""
        meta = keys.suppression_meta(keys.suppression_scope(account))
        counts = await self.redis.hmget(meta, [k.value for k in ACCOUNT_LISTS])
        return {k.value: int(n or 0) for k, n in zip(ACCOUNT_LISTS, counts, strict=True)}

    async def list_sizes(self) -> dict[str, int]:
        """Active entries per list, over all accounts (Prometheus)."""
        accounts = sorted(await self.redis.smembers(keys.ACCOUNTS))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.suppression_meta(keys.BOUNCE_SCOPE), SuppressionList.BOUNCES.value)
            for account in accounts:
                meta = keys.suppression_meta(keys.suppression_scope(account))
                pipe.hmget(meta, [k.value for k in ACCOUNT_LISTS])
            rows = await pipe.execute()
        sizes = {k.value: 0 for k in SuppressionList}
        sizes[SuppressionList.BOUNCES.value] = int(rows[0] or 0)
        for row in rows[1:]:
            for kind, n in zip(ACCOUNT_LISTS, row, strict=True):
                sizes[kind.value] += int(n or 0)
        return sizes


def _sizes(kind: SuppressionList) -> list[str]:
    """A list's meta fields that size its filter: entries, filter bits, adds since."""
    return [kind.value, f"{kind}:fbits", f"{kind}:fadds"]


def _key(scope: str, kind: str, part: str, index: int) -> str:
    return f"{keys.suppression_prefix(scope)}{kind}:{part}:{index}"


def _recipient_lines(recipients: Sequence[str]) -> tuple[str, str]:
    """The recipients as suppression_check.lua reads them: a line per address with the two
    halves of its hash and its domain's number, and a line per distinct domain. Built a
    whole batch at a time (one lower(), comprehensions): per-recipient Python was a tenth
    of a check's time; a batch holds few domains, so each is sent once."""
    lowered = "\n".join(recipients).lower().split("\n")
    if len(lowered) != len(recipients):
        raise ValueError("a recipient address holds a line break")
    crc32 = zlib.crc32
    domains = [address[address.rfind("@") :] for address in lowered]
    number = {d: i for i, d in enumerate(dict.fromkeys(domains), 1)}
    hashes = [crc32(a.encode()) for a in lowered]
    return (
        "".join(
            [
                f"{a}\t{h & _MASK}\t{h >> 16}\t{number[d]}\n"
                for a, h, d in zip(lowered, hashes, domains, strict=True)
            ]
        ),
        "".join([f"{d}\t{(h := crc32(d.encode())) & _MASK}\t{h >> 16}\n" for d in number]),
    )


def _first_block(hits: dict[SuppressionList, str]) -> Block | None:
    if SuppressionList.EXEMPTIONS in hits:
        hits.pop(SuppressionList.BOUNCES, None)
    for kind in _PRECEDENCE:
        if kind in hits:
            expires = int(float(hits[kind]))
            return Block(kind, None if expires >= NO_EXPIRY_MS else expires)
    return None
