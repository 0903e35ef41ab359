"""A large list's filter (suppression_filter.lua): never a missed block, fewer lookups.

The filter may only ever say "maybe" too often, never "no" for an entry on the list:
every test compares the answers with the filter against the answers without it, and
the build's races (entries added while it walks, a builder outliving its lock) are
played step by step.
"""

from __future__ import annotations

import random

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.suppression import (
    Block,
    Origin,
    SuppressionList,
    Suppressions,
    normalise_target,
)

NOW = 1_790_000_000_000
DAY = 86_400_000
BLOCKS = SuppressionList.BLOCKS
BOUNCE_META = keys.suppression_meta(keys.BOUNCE_SCOPE)
ACCOUNT_META = keys.suppression_meta(keys.suppression_scope("acct"))


def address(i: int) -> str:
    return f"user{i}@d{i % 7}.example"


async def fill(sup: Suppressions, n: int) -> None:
    """Bounces, and an account block list of addresses, domains and API_USER entries."""
    await sup.add_bounces([(address(i), False, "550 5.1.1") for i in range(n)], Origin.MP, NOW)
    items: list[tuple[str, str | None, int | None, str]] = [
        (address(i + n), None, None, "") for i in range(n)
    ]
    items += [(address(i + 2 * n), "au", NOW + DAY, "") for i in range(n // 4)]
    items += [(normalise_target("@blocked.example"), None, None, "")]
    items += [(normalise_target("@au-only.example"), "au", None, "")]
    await sup.add("acct", BLOCKS, items, Origin.API, now_ms=NOW)


def recipients(n: int) -> list[str]:
    rng = random.Random(5)
    out = [address(rng.randrange(4 * n)) for _ in range(600)]
    out += [f"x{i}@blocked.example" for i in range(5)] + ["y@au-only.example"]
    return out


async def zscores(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_zscore", {}).get("calls", 0))


async def answers(sup: Suppressions, batch: list[str], at: int = NOW + 1) -> list[Block | None]:
    return await sup.check("acct", "au", batch, now_ms=at)


def suppressions(redis: Redis) -> Suppressions:
    """At NOW: the periodic pruning must not take the entries the tests added at NOW."""
    return Suppressions(redis, clock=lambda: (NOW + 1) / 1000)


async def test_a_filtered_list_answers_exactly_as_without_its_filter(redis: Redis) -> None:
    sup = suppressions(redis)
    await fill(sup, 400)
    batch = recipients(400)
    before = await answers(sup, batch)
    assert sum(b is not None for b in before) > 300  # the batch mixes hits and misses
    # Two days on, the API_USER entries have expired: answered by their time, filter or not.
    later = await answers(sup, batch, NOW + 2 * DAY)
    assert later != before

    sup.filter_min_entries = 100
    await redis.sadd(keys.ACCOUNTS, "acct")  # the engine maintains the lists of accounts
    await sup.maintain()
    assert int(await redis.hget(BOUNCE_META, "bounces:fbits") or 0) >= 65536
    assert int(await redis.hget(ACCOUNT_META, "blocks:fbits") or 0) >= 65536
    assert await answers(sup, batch) == before
    assert await answers(sup, batch, NOW + 2 * DAY) == later

    # Misses mostly stop at the filter: 600 recipients none of which is listed.
    misses = [f"nobody{i}@d{i % 7}.example" for i in range(600)]
    calls = await zscores(redis)
    assert await answers(sup, misses) == [None] * 600
    looked_up = await zscores(redis) - calls
    assert looked_up < 0.1 * 600 * 2  # two lists looked up per recipient without filters


async def test_entries_added_while_a_filter_is_built_are_marked_by_their_add(
    redis: Redis,
) -> None:
    sup = suppressions(redis)
    sup.filter_min_entries = 100
    await fill(sup, 200)
    # The build's first step; then an entry arrives, in a bucket the walk may have passed.
    await sup._filter(keys=[ACCOUNT_META], args=["blocks", "start", 1 << 16, "t1"])
    await sup.add("acct", BLOCKS, [("late@new.example", None, None, "")], Origin.API, NOW)
    assert await sup._filter(keys=[ACCOUNT_META], args=["blocks", "finish", "t1"]) == 1
    # The walk never ran: the filter knows the late entry alone, and that is enough.
    [late, early] = await answers(sup, ["late@new.example", address(200)])
    assert late is not None and late.list is BLOCKS
    assert early is None  # an entry the (skipped) walk would have marked: not found
    # The real build marks everything, and entries added after it mark the filter.
    await redis.hdel(ACCOUNT_META, "blocks:fbits")
    assert await sup.refresh_filter(keys.suppression_scope("acct"), BLOCKS)
    await sup.add("acct", BLOCKS, [("later@new.example", None, None, "")], Origin.API, NOW)
    found = await answers(sup, ["late@new.example", address(200), "later@new.example"])
    assert all(b is not None and b.list is BLOCKS for b in found)


async def test_a_builder_that_outlived_its_lock_cannot_install_its_filter(redis: Redis) -> None:
    sup = suppressions(redis)
    await fill(sup, 50)
    await sup._filter(keys=[ACCOUNT_META], args=["blocks", "start", 1 << 16, "old"])
    await sup._filter(keys=[ACCOUNT_META], args=["blocks", "start", 1 << 17, "new"])
    assert await sup._filter(keys=[ACCOUNT_META], args=["blocks", "finish", "old"]) == 0
    assert await redis.hget(ACCOUNT_META, "blocks:fbits") is None
    assert await sup._filter(keys=[ACCOUNT_META], args=["blocks", "finish", "new"]) == 1
    assert await redis.hget(ACCOUNT_META, "blocks:fbits") == str(1 << 17)


async def test_a_filter_is_rebuilt_as_it_fills_and_dropped_when_its_list_shrinks(
    redis: Redis,
) -> None:
    sup = suppressions(redis)
    sup.filter_min_entries = 100
    scope = keys.BOUNCE_SCOPE
    await sup.add_bounces([(address(i), False, "") for i in range(120)], Origin.MP, NOW)
    assert await sup.refresh_filter(scope, SuppressionList.BOUNCES)
    assert await redis.hget(BOUNCE_META, "bounces:fbits") == str(1 << 16)
    assert not await sup.refresh_filter(scope, SuppressionList.BOUNCES)  # still fits

    # 8,192 entries marked fill an eighth of 65,536 bits: rebuilt to the list's size.
    more = [(address(i), False, "") for i in range(120, 8300)]
    for start in range(0, len(more), 2000):
        await sup.add_bounces(more[start : start + 2000], Origin.MP, NOW)
    assert int(await redis.hget(BOUNCE_META, "bounces:fadds") or 0) == 8180
    assert await sup.refresh_filter(scope, SuppressionList.BOUNCES)
    assert await redis.hget(BOUNCE_META, "bounces:fbits") == str(1 << 18)
    assert await redis.hget(BOUNCE_META, "bounces:fadds") == "0"
    found = await sup.check("acct", "", [address(i) for i in range(0, 8300, 7)], now_ms=NOW + 1)
    assert all(b is not None for b in found)

    # Expired and pruned below a quarter of the threshold: the filter goes.
    await sup.prune(now_ms=NOW + 31 * DAY)
    await sup.maintain()
    assert await redis.hget(BOUNCE_META, "bounces:fbits") is None
    assert not await redis.exists(keys.suppression_prefix(scope) + "bounces:f")
    await sup.add_bounces([("back@again.example", False, "")], Origin.MP, NOW + 32 * DAY)
    [block] = await sup.check("acct", "", ["back@again.example"], now_ms=NOW + 32 * DAY)
    assert block is not None and block.list is SuppressionList.BOUNCES
