"""Crash-safety soak (issue 10, point 1), the issue's size: 20,000 emails over four
queues, two engine processes, three SIGKILLs at random moments (seeded, logged),
each followed by a replacement engine (about 30 s). `python -m bench.soak` runs the
same soak after a baseline without kills and reports the figures;
tests/soak_harness.py says what is checked.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_harness import Engines, TracingMP
from soak_harness import POLICY, Sender, SoakPlan, run_soak

PLAN = SoakPlan(n=20_000, kills=3, seed=10)


@pytest.fixture
def engines(redis_url: str, tracing_mp: TracingMP, tmp_path: Path) -> Iterator[Engines]:
    launcher = Engines.to(tracing_mp, redis_url, tmp_path, POLICY, PLAN.batch_size)
    try:
        yield launcher
    finally:
        launcher.kill_all()


@pytest.mark.timeout(300)  # ~30 s; a loaded machine may take a few times that
async def test_soak_with_three_engine_kills_loses_nothing_and_counts_everything_once(
    client, sender, redis, tracing_mp, engines
):
    report = await run_soak(
        redis,
        client,
        Sender(sender.account, sender.api_user, sender.basic),
        engines,
        tracing_mp,
        PLAN,
        log=print,
    )
    assert len(report.kills) == 3 and all(k.victim for k in report.kills)
    assert len(engines.killed) == 3
    ages = report.unrecorded_age_ms or [0.0]
    print(
        f"soak: {PLAN.n} emails, {report.delivered_per_s:.0f} delivered/s under kills;"
        f" sent twice {report.duplicates} {report.resent}, accepted by the MP a median"
        f" {statistics.median(ages):.0f} ms (at most {max(ages):.0f}) before the kill;"
        f" recorded but unacknowledged at a kill {[k.recorded_unacked for k in report.kills]};"
        f" windows {report.window_totals}; totals {report.stats_totals}"
    )
