"""The suppression lists against a real Redis: expiry law, scopes, checks, listing, pruning."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.statuses import InvalidReason
from queue_engine.suppression import (
    BUCKETS,
    DAY_MS,
    EntryError,
    ListFilter,
    Origin,
    SuppressionList,
    Suppressions,
    UnsubscribeReason,
    bounce_days,
    is_tencent_mx,
    normalise_target,
)

NOW = 1_790_000_000_000

B3 = {
    # N: (Tencent days, other days)
    1: (1, 30),
    2: (2, 60),
    3: (4, 180),
    4: (8, 180),
    5: (16, 180),
    6: (30, 180),
    9: (30, 180),
}


@pytest.mark.parametrize("n", sorted(B3))
def test_bounce_law_table(n: int) -> None:
    assert (bounce_days(n, True), bounce_days(n, False)) == B3[n]


@pytest.mark.parametrize("tencent", [True, False])
async def test_each_bounce_extends_the_block_by_the_law_of_its_count(
    redis: Redis, tencent: bool
) -> None:
    sup = Suppressions(redis)
    now = NOW
    for n in range(1, 7):
        [(count, expires)] = await sup.add_bounces(
            [("Who@Example.COM", tencent, "550 5.1.1 no such user")], Origin.MP, now_ms=now
        )
        assert count == n
        assert expires == now + B3[n][0 if tencent else 1] * DAY_MS
        # Blocked until exactly that moment, and no longer.
        [block] = await sup.check("acct", "au", ["who@example.com"], now_ms=expires - 1)
        assert block is not None and block.list is SuppressionList.BOUNCES
        assert block.until_ms == expires
        assert block.reason is InvalidReason.BLACKLIST
        assert block.text == "Blacklist: Bounce (worker:address in bounce list)"
        assert await sup.check("acct", "au", ["who@example.com"], now_ms=expires) == [None]
        now = expires + DAY_MS


async def test_bounce_count_survives_expiry_and_pruning(redis: Redis) -> None:
    sup = Suppressions(redis)
    [(_, expires)] = await sup.add_bounces([("a@b.example", False, "")], Origin.DSN, now_ms=NOW)
    assert await sup.list_sizes() == {
        "bounces": 1,
        "blocks": 0,
        "complaints": 0,
        "unsubscribes": 0,
        "exemptions": 0,
    }
    assert await sup.prune(now_ms=expires) == 1
    assert (await sup.list_sizes())["bounces"] == 0
    assert (await sup.page(None, SuppressionList.BOUNCES, ListFilter())).entries == []
    [(count, _)] = await sup.add_bounces(
        [("a@b.example", False, "")], Origin.MP, now_ms=expires + 5
    )
    assert count == 2


def test_tencent_by_mx_host() -> None:
    assert is_tencent_mx(["mxbiz1.qq.com."])
    assert is_tencent_mx(["mx3.QQ.com"])
    assert not is_tencent_mx(["mx.notqq.com", "qq.com.evil.example"])


async def test_account_lists_block_with_their_own_text_and_scope(redis: Redis) -> None:
    sup = Suppressions(redis)
    await sup.add(
        "acct",
        SuppressionList.BLOCKS,
        [("@blocked.example", None, None, "")],
        Origin.API,
        now_ms=NOW,
    )
    await sup.add(
        "acct",
        SuppressionList.BLOCKS,
        [("only@au1.example", "au1", None, "")],
        Origin.API,
        now_ms=NOW,
    )
    await sup.complain("acct", "au2", "Spammed@Example.org", "abuse", Origin.ARF, now_ms=NOW)
    await sup.unsubscribe("acct", "au1", "gone@example.org", UnsubscribeReason.SPAM, now_ms=NOW)
    rcpts = [
        "x@blocked.example",
        "only@au1.example",
        "spammed@example.org",
        "gone@example.org",
        "fine@example.org",
    ]
    blocks = await sup.check("acct", "au1", rcpts, now_ms=NOW + 1)
    assert [b.text if b else None for b in blocks] == [
        "Blacklist: Custom Block (worker:address in block list)",
        "Blacklist: Custom Block (worker:address in block list)",
        "Blacklist: Spam Report (worker:address in complaint list)",
        "Unsubscribed (worker:address in unsubscribe list)",
        None,
    ]
    assert blocks[3] is not None and blocks[3].reason is InvalidReason.UNSUBSCRIBED
    # The API_USER-scoped block does not reach another API_USER; nothing reaches
    # another account.
    other = await sup.check("acct", "au2", rcpts, now_ms=NOW + 1)
    assert [b is not None for b in other] == [True, False, True, True, False]
    assert await sup.check("other", "au1", rcpts, now_ms=NOW + 1) == [None] * 5
    # Spam reports expire after 180 days exactly.
    later = NOW + 180 * DAY_MS
    assert (await sup.check("acct", "au2", ["spammed@example.org"], now_ms=later - 1))[0]
    assert (await sup.check("acct", "au2", ["spammed@example.org"], now_ms=later)) == [None]


async def test_exemption_lifts_the_bounce_block_only(redis: Redis) -> None:
    sup = Suppressions(redis)
    await sup.add_bounces(
        [("a@x.example", False, ""), ("b@y.example", False, "")], Origin.MP, now_ms=NOW
    )
    await sup.add(
        "acct", SuppressionList.EXEMPTIONS, [("@x.example", None, None, "")], Origin.API, now_ms=NOW
    )
    await sup.add(
        "acct", SuppressionList.BLOCKS, [("a@x.example", None, None, "")], Origin.API, now_ms=NOW
    )
    blocks = await sup.check("acct", "au", ["a@x.example", "b@y.example"], now_ms=NOW + 1)
    assert [b.list if b else None for b in blocks] == [
        SuppressionList.BLOCKS,  # exempt from the bounce list, not from the own block list
        SuppressionList.BOUNCES,
    ]
    await sup.remove("acct", SuppressionList.BLOCKS, [("a@x.example", None)])
    assert await sup.check("acct", "au", ["a@x.example"], now_ms=NOW + 1) == [None]
    # Another account is not exempt.
    assert (await sup.check("other", "au", ["a@x.example"], now_ms=NOW + 1))[0] is not None


async def test_block_expiry_and_upsert_keeps_created(redis: Redis) -> None:
    sup = Suppressions(redis, clock=lambda: NOW / 1000)
    [new] = await sup.add(
        "acct",
        SuppressionList.BLOCKS,
        [("t@x.example", None, NOW + 1000, "vip")],
        Origin.API,
        now_ms=NOW,
    )
    assert new
    [new] = await sup.add(
        "acct",
        SuppressionList.BLOCKS,
        [("t@x.example", None, NOW + 5000, "vip2")],
        Origin.CONSOLE,
        now_ms=NOW + 10,
    )
    assert not new
    [entry] = (await sup.page("acct", SuppressionList.BLOCKS, ListFilter())).entries
    assert (entry.created_ms, entry.expires_ms, entry.reason, entry.origin, entry.count) == (
        NOW,
        NOW + 5000,
        "vip2",
        "console",
        2,
    )
    assert (await sup.check("acct", "au", ["t@x.example"], now_ms=NOW + 4999))[0] is not None
    assert await sup.check("acct", "au", ["t@x.example"], now_ms=NOW + 5000) == [None]


async def test_listing_pages_filters_and_cursor(redis: Redis) -> None:
    sup = Suppressions(redis)
    items = [(f"user{i}@d{i % 3}.example", None, None, "") for i in range(250)]
    await sup.add("acct", SuppressionList.BLOCKS, items, Origin.API, now_ms=NOW)
    seen: list[str] = []
    cursor = None
    while True:
        page = await sup.page("acct", SuppressionList.BLOCKS, ListFilter(), cursor, limit=40)
        assert len(page.entries) <= 40
        seen += [e.target for e in page.entries]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert sorted(seen) == sorted(t for t, *_ in items)
    by_domain = [
        e.target
        async for e in sup.iterate("acct", SuppressionList.BLOCKS, ListFilter(domain="d1.example"))
    ]
    assert sorted(by_domain) == sorted(t for t, *_ in items if t.endswith("@d1.example"))
    one = await sup.page("acct", SuppressionList.BLOCKS, ListFilter(address="user7@d1.example"))
    assert [e.target for e in one.entries] == ["user7@d1.example"] and one.cursor is None


async def test_listing_by_period_and_api_user(redis: Redis) -> None:
    sup = Suppressions(redis)
    await sup.complain("acct", "au1", "old@x.example", "abuse", Origin.ARF, now_ms=NOW)
    await sup.complain("acct", "au2", "new@x.example", "fraud", Origin.ARF, now_ms=NOW + DAY_MS)
    flt = ListFilter(created_from_ms=NOW + 1)
    [entry] = [e async for e in sup.iterate("acct", SuppressionList.COMPLAINTS, flt)]
    assert (entry.target, entry.api_user, entry.reason) == ("new@x.example", "au2", "fraud")
    assert entry.expires_ms == NOW + DAY_MS + 180 * DAY_MS
    flt = ListFilter(api_user="au1", include_unscoped=False)
    assert [e.target async for e in sup.iterate("acct", SuppressionList.COMPLAINTS, flt)] == [
        "old@x.example"
    ]


async def test_entries_for_an_address_with_details(redis: Redis) -> None:
    sup = Suppressions(redis, clock=lambda: NOW / 1000)
    await sup.add_bounces([("a@x.example", True, "550 no such user")], Origin.MP, now_ms=NOW)
    await sup.add(
        "acct",
        SuppressionList.BLOCKS,
        [("a@x.example", "au1", None, "asked")],
        Origin.API,
        now_ms=NOW,
    )
    found = await sup.entries_for("acct", ["au1", "au2"], "a@x.example")
    by_list = {e.list: e for e in found}
    assert set(by_list) == {SuppressionList.BOUNCES, SuppressionList.BLOCKS}
    assert by_list[SuppressionList.BOUNCES].to_api() == {
        "address": "a@x.example",
        "list": "bounces",
        "api_user": None,
        "reason": "550",
        "origin": "mp",
        "created_at": "2026-09-21T14:13:20.000Z",
        "expires_at": "2026-09-22T14:13:20.000Z",
        "count": 1,
    }
    assert by_list[SuppressionList.BLOCKS].api_user == "au1"
    assert by_list[SuppressionList.BLOCKS].expires_ms is None


def test_targets_are_normalised_or_refused() -> None:
    assert normalise_target("John.Doe@EXAMPLE.com") == "john.doe@example.com"
    assert normalise_target("@Example.com") == "@example.com"
    assert normalise_target("bücher.example") == "@xn--bcher-kva.example"
    with pytest.raises(EntryError) as bad:
        normalise_target("not an address@")
    assert bad.value.field == "address"
    with pytest.raises(EntryError) as bad:
        normalise_target("@nodot")
    assert bad.value.field == "domain"


async def test_a_large_list_stays_compact(redis: Redis) -> None:
    """Buckets stay in the compact encoding at the size the issue asks for."""
    sup = Suppressions(redis)
    n = 100_000  # the bench fills a million; here every bucket gets a few
    batch = 5000
    for start in range(0, n, batch):
        await sup.add_bounces(
            [(f"user{i}@example{i % 97}.com", False, "") for i in range(start, start + batch)],
            Origin.MP,
            now_ms=NOW,
        )
    prefix = keys.suppression_prefix(keys.BOUNCE_SCOPE)
    encodings = {
        await redis.object("encoding", f"{prefix}bounces:z:{b}") for b in range(0, BUCKETS, 997)
    }
    assert encodings - {None} <= {"ziplist", "listpack"} and len(encodings) > 1
    hits = await sup.check(
        "acct", "au", [f"user{i}@example{i % 97}.com" for i in range(1000)], now_ms=NOW + 1
    )
    assert all(h is not None for h in hits)


async def test_changes_people_make_are_logged_with_their_origin(redis: Redis) -> None:
    sup = Suppressions(redis)
    await sup.add("acct", SuppressionList.BLOCKS, [("a@x.example", "au1", None, "")], Origin.API)
    await sup.remove("acct", SuppressionList.BLOCKS, [("a@x.example", "au1")], Origin.CONSOLE)
    assert await sup.remove("acct", SuppressionList.BLOCKS, [("a@x.example", "au1")]) == [False]
    changes = await sup.changes("acct")
    assert [(c["action"], c["list"], c["entry"], c["api_user"], c["origin"]) for c in changes] == [
        ("removed", "blocks", "a@x.example", "au1", "console"),
        ("added", "blocks", "a@x.example", "au1", "api"),
    ]
    # What the MP or a recipient did is on the entry, not in the people's log.
    await sup.complain("acct", "au1", "b@x.example", "abuse", Origin.ARF)
    assert len(await sup.changes("acct")) == 2
