"""Forgetting old status data: records expire by TTL, account-level indexes are trimmed.

Index members are ids that start with the request time, so everything older
than the retention period is one ZREMRANGEBYLEX per index.
"""

from __future__ import annotations

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.accounts import EmailType
from queue_engine.statuses import REASONS


async def account_indexes(redis: Redis, account: str) -> list[str]:
    found = [keys.index_all(account)]
    found += [keys.index_type(account, t) for t in EmailType]
    for status, reasons in REASONS.items():
        found.append(keys.index_status(account, status))
        found += [keys.index_status(account, status, reason) for reason in reasons]
    api_users = await redis.smembers(keys.account_api_users(account))
    found += [keys.index_api_user(account, name) for name in sorted(api_users)]
    return found


async def trim_indexes(redis: Redis, now_ms: int, retention_days: int) -> int:
    """Drop index entries older than the retention period; returns how many went."""
    cutoff = "(" + f"{now_ms - retention_days * 86_400_000:012x}"
    removed = 0
    for account in sorted(await redis.smembers(keys.ACCOUNTS)):
        async with redis.pipeline(transaction=False) as pipe:
            for key in await account_indexes(redis, account):
                pipe.zremrangebylex(key, "-", cutoff)
            removed += sum(await pipe.execute())
    return removed
