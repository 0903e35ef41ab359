"""Email status queries (SPEC S4) from the indexes, never by scanning all records.

Each filter has its own index; a query walks the smallest index that applies
over the requested period (newest first) and checks the other filters on the
records it reads. A query reads at most `SCAN_BUDGET` candidates per page: a
very unselective combination returns fewer items with a cursor to continue,
instead of a request that runs for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.accounts import Principal
from queue_engine.records import EmailRecord, is_email_id

MAX_PERIOD_MS = 30 * 86400 * 1000
SCAN_BUDGET = 20_000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class EmailFilter:
    start_ms: int
    end_ms: int
    address: str | None = None
    type: str | None = None
    tag: str | None = None
    api_user: str | None = None
    status: str | None = None
    reason: str | None = None

    def matches(self, record: EmailRecord) -> bool:
        return self.matches_fields(
            record.recipient, record.type, record.tag, record.api_user, record.status, record.reason
        )

    def matches_fields(
        self, recipient: str, email_type: str, tag: str, api_user: str, status: str, reason: str
    ) -> bool:
        """The check on raw record fields, for readers that skip building an EmailRecord."""
        return (
            (self.address is None or recipient.lower() == self.address)
            and (self.type is None or email_type == self.type)
            and (self.tag is None or tag == self.tag)
            and (self.api_user is None or api_user == self.api_user)
            and (self.status is None or status == self.status)
            and (self.reason is None or reason == self.reason)
        )


@dataclass(frozen=True, slots=True)
class Page:
    items: list[EmailRecord]
    next_cursor: str | None


def _candidate_indexes(account: str, f: EmailFilter) -> list[str]:
    found = [keys.index_all(account)]
    if f.address:
        found.append(keys.index_address(account, f.address))
    if f.tag:
        found.append(keys.index_tag(account, f.tag))
    if f.api_user:
        found.append(keys.index_api_user(account, f.api_user))
    if f.type:
        found.append(keys.index_type(account, f.type))
    if f.status:
        found.append(keys.index_status(account, f.status, f.reason))
    return found


def period_bounds(f: EmailFilter) -> tuple[str, str]:
    """ZRANGEBYLEX bounds (inclusive start, exclusive end) of f's period in an index."""
    return "[" + f"{f.start_ms:012x}", "(" + f"{f.end_ms + 1:012x}"


async def smallest_index(
    redis: Redis, account: str, f: EmailFilter, lo: str, hi: str
) -> tuple[str, int]:
    """The index to walk for f: the one of its filters with the fewest ids between lo and hi
    (their count is also an upper bound of what matches)."""
    indexes = _candidate_indexes(account, f)
    async with redis.pipeline(transaction=False) as pipe:
        for key in indexes:
            pipe.zlexcount(key, lo, hi)  # type: ignore[no-untyped-call]
        counts = await pipe.execute()
    count, _, index = min(zip(counts, range(len(indexes)), indexes, strict=True))
    return index, int(count)


class EmailQueries:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, principal: Principal, email_id: str) -> EmailRecord | None:
        """The record if the caller may see it; None for unknown and foreign ids alike."""
        if not is_email_id(email_id):
            return None
        raw = await self.redis.hgetall(keys.email(email_id))
        if not raw or raw.get("account") != principal.account:
            return None
        if principal.api_user and raw.get("api_user") != principal.api_user:
            return None
        return EmailRecord.from_hash(email_id, raw)

    async def search(
        self, principal: Principal, f: EmailFilter, limit: int, cursor: str | None
    ) -> Page:
        lo, hi = period_bounds(f)
        if cursor and "(" + cursor < hi:
            hi = "(" + cursor
        index, _ = await smallest_index(self.redis, principal.account, f, lo, hi)
        items: list[EmailRecord] = []
        scanned = 0
        last_seen: str | None = None
        while scanned < SCAN_BUDGET:
            ids = await self.redis.zrevrangebylex(index, hi, lo, 0, _CHUNK)
            if not ids:
                return Page(items, None)
            async with self.redis.pipeline(transaction=False) as pipe:
                for email_id in ids:
                    pipe.hgetall(keys.email(email_id))
                rows = await pipe.execute()
            for email_id, raw in zip(ids, rows, strict=True):
                scanned += 1
                last_seen = email_id
                if not raw or raw.get("account") != principal.account:
                    continue  # expired record whose index entry has not been trimmed yet
                record = EmailRecord.from_hash(email_id, raw)
                if f.matches(record):
                    if len(items) == limit:
                        return Page(items, items[-1].email_id)
                    items.append(record)
            hi = "(" + ids[-1]
            if len(ids) < _CHUNK:
                return Page(items, None)
        return Page(items, last_seen)
