"""Enforcing the delivery policy across every engine process, in Redis.

Quotas are fixed clock windows (the hour, the UTC day) so that an exhausted
quota has an exact "next outbound time" to show. Connection slots are a
sorted set per (sending IP, provider) whose members expire, so the limit on
open connections holds across processes and survives a crashed engine.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.policy import Policy

_HERE = Path(__file__).parent
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SLOT_SECONDS = 6.0
"""How long a connection slot lasts unless its engine renews it (`SmtpPool.heartbeat`):
short, so the slots of a killed engine free up within seconds."""


class SlotDenied(IntEnum):
    RATE = 1
    """The minute's new connections are used up: retry at the next minute."""
    OPEN = 2
    """As many connections as allowed are open: wait for one to close."""


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int
    until_ms: int | None
    """When the quota that limited the grant refills (None: not limited)."""


def source_label(source: str) -> str:
    return source or "default"


class Limiter:
    def __init__(self, redis: Redis, policy: Policy, clock: Callable[[], float]) -> None:
        self.redis = redis
        self.policy = policy
        self.clock = clock
        self._quota = redis.register_script((_HERE / "quota.lua").read_text())
        self._slot = redis.register_script((_HERE / "connection_slot.lua").read_text())

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _take(self, scope: str, name: str, n: int, per_hour: int, per_day: int) -> Grant:
        if n > 0 and not per_hour and not per_day:
            return Grant(n, None)
        now = self.now_ms()
        hour, day = now // HOUR_MS, now // DAY_MS
        granted, limited = await self._quota(
            keys=[keys.quota(scope, name, "h", hour), keys.quota(scope, name, "d", day)],
            args=[n, per_hour, per_day, 3700, 90000],
        )
        until = {1: (hour + 1) * HOUR_MS, 2: (day + 1) * DAY_MS}.get(int(limited))
        return Grant(int(granted), until)

    async def take_domain(self, domain: str, n: int) -> Grant:
        p = self.policy.for_domain(domain)
        return await self._take(
            "dom", self.policy.provider(domain), n, p.quota_per_hour, p.quota_per_day
        )

    async def refund_domain(self, domain: str, n: int) -> None:
        p = self.policy.for_domain(domain)
        if n > 0 and (p.quota_per_hour or p.quota_per_day):
            await self._take("dom", self.policy.provider(domain), -n, 0, 0)

    @property
    def ip_quota(self) -> bool:
        return bool(self.policy.ip_quota_per_hour or self.policy.ip_quota_per_day)

    async def take_ip(self, source: str, n: int) -> Grant:
        return await self._take(
            "ip",
            source_label(source),
            n,
            self.policy.ip_quota_per_hour,
            self.policy.ip_quota_per_day,
        )

    async def refund_ip(self, source: str, n: int) -> None:
        if n > 0 and self.ip_quota:
            await self._take("ip", source_label(source), -n, 0, 0)

    async def open_slot(self, source: str, domain: str) -> tuple[str | None, SlotDenied | None]:
        """A slot id for a new connection, or why none may open now."""
        p = self.policy.for_domain(domain)
        provider = self.policy.provider(domain)
        now = self.now_ms()
        slot = secrets.token_hex(6)
        verdict = await self._slot(
            keys=[
                keys.connection_slots(source_label(source), provider),
                keys.connection_rate(source_label(source), provider, now // 60_000),
            ],
            args=[now, slot, now + int(SLOT_SECONDS * 1000), p.max_connections,
                  p.new_connections_per_minute],
        )  # fmt: skip
        return (slot, None) if verdict == 0 else (None, SlotDenied(int(verdict)))

    async def renew_slots(self, slots: list[tuple[str, str, str]]) -> None:
        """Extend the slots (source, domain, slot id) of connections still open."""
        deadline = self.now_ms() + int(SLOT_SECONDS * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for source, domain, slot in slots:
                key = keys.connection_slots(source_label(source), self.policy.provider(domain))
                pipe.zadd(key, {slot: deadline}, xx=True)
            await pipe.execute()

    async def close_slot(self, source: str, domain: str, slot: str) -> None:
        key = keys.connection_slots(source_label(source), self.policy.provider(domain))
        await self.redis.zrem(key, slot)

    def next_minute_ms(self) -> int:
        return (self.now_ms() // 60_000 + 1) * 60_000
