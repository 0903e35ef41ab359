"""Crash-safety soak (issue 10, point 1), the test suite's size: 3,000 emails over four
queues, two engine processes, three SIGKILLs at random moments (seeded, logged),
each followed by a replacement engine. `python -m bench.soak` runs the same soak
with 20,000 emails; tests/soak_harness.py says what is checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from crash_harness import Engines, TracingMP
from soak_harness import POLICY, Sender, SoakPlan, run_soak

PLAN = SoakPlan(n=3000, kills=3, seed=10)


@pytest.fixture
async def mp() -> AsyncIterator[TracingMP]:
    server = await TracingMP().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def engines(redis_url: str, mp: TracingMP, tmp_path: Path) -> Iterator[Engines]:
    launcher = Engines.to(mp, redis_url, tmp_path, POLICY, PLAN.batch_size)
    try:
        yield launcher
    finally:
        launcher.kill_all()


async def test_soak_with_three_engine_kills_loses_nothing_and_counts_everything_once(
    client, sender, redis, mp, engines
):
    report = await run_soak(
        redis,
        client,
        Sender(sender.account, sender.api_user, sender.basic),
        engines,
        mp,
        PLAN,
        log=print,
    )
    assert len(report.kills) == 3 and all(k.victim for k in report.kills)
    assert len(engines.killed) == 3
    print(
        f"soak: {PLAN.n} emails, {report.delivered_per_s:.0f} delivered/s under kills;"
        f" sent twice {report.duplicates} {report.resent};"
        f" recorded but unacknowledged at a kill {[k.recorded_unacked for k in report.kills]};"
        f" windows {report.window_totals}; totals {report.stats_totals}"
    )
