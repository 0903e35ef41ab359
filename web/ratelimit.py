"""Rate limits of the web app: requests per API caller, failed sign-ins per IP and email.

Counted in Redis in fixed clock windows, so every web process shares them and a
restart forgets nothing. A caller over a limit gets 429 with `Retry-After`; a
client IP with too many failed authentications is refused before its next
credentials are even checked, which makes guessing keys or passwords slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from queue_engine import keys


@dataclass(frozen=True, slots=True)
class RateLimits:
    api_per_minute: int = 6000
    """Requests per minute per API_USER (Basic) or account key (Bearer); 0: no limit."""
    auth_failures_per_minute: int = 60
    """Failed API authentications and console logins per minute per client IP; 0: no limit."""
    login_failures_per_15_minutes: int = 10
    """Failed console logins per console user email per 15 minutes; 0: no limit."""


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str
    limit: int
    window_seconds: int


class RateLimiter:
    def __init__(
        self, redis: Redis, limits: RateLimits, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.api = Limit("api", limits.api_per_minute, 60)
        self.auth_failures = Limit("authfail", limits.auth_failures_per_minute, 60)
        self.login_failures = Limit("loginfail", limits.login_failures_per_15_minutes, 900)

    def _window(self, limit: Limit) -> tuple[int, float]:
        now = self.clock()
        window = int(now // limit.window_seconds)
        return window, (window + 1) * limit.window_seconds - now

    async def count(self, limit: Limit, who: str) -> int | None:
        """Count one event; the seconds to wait (for Retry-After) when it is over the limit."""
        if limit.limit <= 0:
            return None
        window, left = self._window(limit)
        key = keys.rate_counter(limit.scope, who, window)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, limit.window_seconds + 1)
            count, _ = await pipe.execute()
        return _retry_after(left) if int(count) > limit.limit else None

    async def admit(self, ip: str, caller: str) -> int | None:
        """An authenticated request: counted for its caller, refused while its IP is
        blocked for failed attempts; one round trip. Seconds to wait, or None."""
        if self.api.limit <= 0 and self.auth_failures.limit <= 0:
            return None
        window, left = self._window(self.api)
        failures_window, failures_left = self._window(self.auth_failures)
        key = keys.rate_counter(self.api.scope, caller, window)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.rate_counter(self.auth_failures.scope, ip, failures_window))
            pipe.incr(key)
            pipe.expire(key, self.api.window_seconds + 1)
            failures, count, _ = await pipe.execute()
        if 0 < self.auth_failures.limit <= int(failures or 0):
            return _retry_after(failures_left)
        if 0 < self.api.limit < int(count):
            return _retry_after(left)
        return None

    async def blocked(self, limit: Limit, *who: str) -> int | None:
        """Whether any of these is already over the limit, without counting an event."""
        if limit.limit <= 0 or not who:
            return None
        window, left = self._window(limit)
        counts = await self.redis.mget([keys.rate_counter(limit.scope, w, window) for w in who])
        if any(int(c or 0) >= limit.limit for c in counts):
            return _retry_after(left)
        return None


def _retry_after(seconds_left: float) -> int:
    return max(1, int(seconds_left + 0.999))
