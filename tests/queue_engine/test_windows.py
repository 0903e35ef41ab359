"""Sorted rate windows: exact counts under a synthetic clock, bounded memory."""

from __future__ import annotations

import pytest

from queue_engine import keys
from queue_engine.snapshot import queue_statuses
from queue_engine.windows import KEEP_SECONDS, RateWindows

TAG = keys.queue_tag("acme-tx", "gmail.example")
T0 = 1_800_000_000


async def _rates(redis, now_s: int):
    [status] = await queue_statuses(redis, [keys.split_queue_tag(TAG)], now_s * 1000)
    return status.rates


async def test_rates_are_the_driven_rates_for_every_window_and_counter(redis):
    windows = RateWindows(redis)
    # 60 s at 100 inbound, 50 attempted, 25 outbound events per second, in 4 batches a second.
    for second in range(T0, T0 + 60):
        for _ in range(4):
            await windows.add(redis, TAG, second, inbound=25, attempted=12, outbound=6)
        await windows.add(redis, TAG, second, attempted=2, outbound=1)
    rates = await _rates(redis, T0 + 60)
    for window in (5, 15, 30):
        assert rates[window].inbound == pytest.approx(100)
        assert rates[window].attempted == pytest.approx(50)
        assert rates[window].outbound == pytest.approx(25)


async def test_only_complete_seconds_count_and_a_rate_change_shows_per_window(redis):
    windows = RateWindows(redis)
    for second in range(T0, T0 + 30):
        await windows.add(redis, TAG, second, inbound=10)
    for second in range(T0 + 30, T0 + 35):
        await windows.add(redis, TAG, second, inbound=40)
    await windows.add(redis, TAG, T0 + 35, inbound=1000)  # the current, incomplete second
    rates = await _rates(redis, T0 + 35)
    assert rates[5].inbound == pytest.approx(40)
    assert rates[15].inbound == pytest.approx((10 * 10 + 5 * 40) / 15)
    assert rates[30].inbound == pytest.approx((25 * 10 + 5 * 40) / 30)


async def test_memory_is_bounded_and_idle_windows_expire(redis):
    windows = RateWindows(redis)
    for second in range(T0, T0 + 500):
        await windows.add(redis, TAG, second, inbound=1_000_000)
    key = keys.queue_window(TAG, "in")
    assert await redis.zcard(key) <= KEEP_SECONDS + 1
    assert 0 < await redis.ttl(key) <= KEEP_SECONDS + 1
    rates = await _rates(redis, T0 + 500)
    assert rates[5].inbound == pytest.approx(1_000_000)
    assert not await redis.exists(keys.queue_window(TAG, "att"))  # never counted, never stored


async def test_the_queue_table_survives_redis_forgetting_its_scripts(redis):
    windows = RateWindows(redis)
    other = keys.queue_tag("acme-tx", "qq.example")
    for second in range(T0, T0 + 6):
        await windows.add(redis, TAG, second, outbound=2)
        await windows.add(redis, other, second, outbound=4)
    await redis.script_flush()  # as after a restart without persistence of scripts
    statuses = await queue_statuses(
        redis, [keys.split_queue_tag(TAG), keys.split_queue_tag(other)], (T0 + 6) * 1000
    )
    assert [s.rates[5].outbound for s in statuses] == [pytest.approx(2), pytest.approx(4)]
