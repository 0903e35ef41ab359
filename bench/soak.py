"""The crash-safety soak as a benchmark (issue 10): delivery while engines are SIGKILLed.

    .venv/bin/python -m bench.soak [--n 20000] [--kills 3] [--seed 10]

Runs the soak of tests/soak_harness.py twice in one go, each on a fresh
embedded Redis (AOF, fsync before every reply, the product's default) in a
temp dir: first a baseline with no kills, then the same N emails with `--kills`
SIGKILLs of engine processes at random moments (seeded; each kill is logged on
stderr), each followed at once by a replacement engine. Two engines run at a
time, each from its own loopback IP with 8 connections, to an aiosmtpd MP in
this process that records every copy. Mail is submitted through the send API
first; the clock runs from the engines' start to the last final status. Every
check of the soak (nothing lost, each email final once, counters and pending
agree with the records) is an assertion: a failing check fails the bench.

Lines (JSON, stdout): `machine`; `delivered_per_s` for the baseline and under
kills (with `baseline` and `ratio`); `duplicates` (emails the MP got twice, per
kill; how many of them the MP had accepted before the SIGKILL, and how long
before it: a negative age is a copy the MP accepted after the kill, whose
transaction the dead engine never completed); per kill
`restart_recovery`: seconds from the replacement's start to its first delivery
and to full throughput (the first half-second window wholly after the kill
whose rate is back to 90% of the baseline's median half-second rate; 0.5 s at
the least), and the lowest rate in the 2 s after the kill; `counters` (rate
windows and Prometheus totals, which the soak has checked against the records).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from app.embedded_redis import EmbeddedRedis
from app.runtime import connect
from bench.delivery import machine_fields
from queue_engine.accounts import EmailType, create_account, create_api_user
from queue_engine.config import EngineConfig
from web.api import ApiConfig
from web.app import create_web_app

# The soak's machinery is the test suite's (tests/crash_harness.py, tests/soak_harness.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from crash_harness import Engines, TracingMP
from soak_harness import POLICY, Sender, SoakPlan, SoakReport, run_soak

BENCH = "soak"
FULL_THROUGHPUT = 0.9
"""Share of the baseline's median one-second rate that counts as full throughput."""


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


RATE_WINDOW_S = 0.5
"""Rates are taken over the last half second: short enough to see a kill's dip."""


def rates(report: SoakReport) -> list[tuple[float, float, float]]:
    """(window start, end, emails the MP accepted per second in it) at each progress sample."""
    samples = report.progress
    found = []
    start = 0
    for t, delivered in samples:
        while samples[start][0] < t - RATE_WINDOW_S:
            start += 1
        t0, d0 = samples[start]
        if t - t0 >= 0.9 * RATE_WINDOW_S:
            found.append((t0, t, (delivered - d0) / (t - t0)))
    return found


def steady_rate(report: SoakReport) -> float:
    """The median rate between 10% and 90% delivered: ramp-up and tail aside."""
    n = report.plan.n
    delivered_at = dict(report.progress)
    middle = [r for _, t, r in rates(report) if 0.1 * n <= delivered_at[t] <= 0.9 * n]
    return statistics.median(middle or [r for _, _, r in rates(report)] or [0.0])


async def run_once(plan: SoakPlan, tmp: Path) -> SoakReport:
    server = EmbeddedRedis(tmp / "data")
    url = server.start()
    mp = await TracingMP().start()
    engines = Engines.to(mp, url, tmp, POLICY, plan.batch_size)
    redis = connect(url)
    try:
        await create_account(redis, "soak", "admin@soak.example")
        user = await create_api_user(redis, "soak", "soak-tx", EmailType.TRANSACTIONAL)
        token = base64.b64encode(f"soak-tx:{user.api_key}".encode()).decode()
        sender = Sender("soak", "soak-tx", {"authorization": f"Basic {token}"})
        config = ApiConfig(engine=replace(EngineConfig(), max_age_seconds=3600.0))
        app = create_web_app(config, connect(url))
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://soak.bench") as c:
            return await run_soak(redis, c, sender, engines, mp, plan, log)
    finally:
        engines.kill_all()
        await redis.aclose()
        await mp.stop()
        server.stop()


def recovery(report: SoakReport, full_rate: float) -> list[dict[str, Any]]:
    """Per kill: how soon the replacement delivered, and how soon a whole rate window after
    the kill was back to full throughput (at least RATE_WINDOW_S, the window's length)."""
    found = []
    for kill in report.kills:
        after = [(t, r) for t0, t, r in rates(report) if t0 >= kill.at]
        back = next((t for t, r in after if r >= FULL_THROUGHPUT * full_rate), None)
        first = report.first_delivery_s.get(kill.replacement)
        found.append(
            {
                "victim": kill.victim,
                "replacement": kill.replacement,
                "at_delivered": kill.at_delivered,
                "first_delivery_s": None if first is None else round(first, 3),
                "full_throughput_s": None if back is None else round(back - kill.restarted_at, 3),
                "lowest_rate_2s": round(
                    min((r for t, r in after if t <= kill.at + 2), default=0), 1
                ),
                "recorded_unacked": kill.recorded_unacked,
            }
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="emails (default 20000)")
    parser.add_argument("--kills", type=int, default=3, help="engine SIGKILLs (default 3)")
    parser.add_argument("--seed", type=int, default=10, help="seed of the kill moments")
    parser.add_argument("--engines", type=int, default=2, help="engines running at once")
    parser.add_argument("--domains", type=int, default=4, help="recipient domains (queues)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = parser.parse_args(argv)
    plan = SoakPlan(
        n=args.n, kills=args.kills, seed=args.seed, domains=args.domains, engines=args.engines
    )
    reports = {}
    for name, run_plan in (("baseline", replace(plan, kills=0)), ("kills", plan)):
        tmp = Path(tempfile.mkdtemp(prefix=f"mailpulse-soak-{name}-"))
        log(f"{name}: {plan.n} emails, {run_plan.kills} kills, seed {plan.seed} ({tmp})")
        try:
            reports[name] = asyncio.run(run_once(run_plan, tmp))
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    base, soak = reports["baseline"], reports["kills"]
    full_rate = steady_rate(base)
    common = {"n": plan.n, "engines": plan.engines, "domains": plan.domains}
    emit(metric="machine", **machine_fields())
    emit(
        metric="delivered_per_s",
        run="baseline",
        value=round(base.delivered_per_s, 1),
        unit="msg/s",
        seconds=round(base.finished - base.started, 3),
        steady_rate=round(full_rate, 1),
        **common,
    )
    emit(
        metric="delivered_per_s",
        run="kills",
        value=round(soak.delivered_per_s, 1),
        unit="msg/s",
        baseline=round(base.delivered_per_s, 1),
        ratio=round(soak.delivered_per_s / base.delivered_per_s, 3),
        seconds=round(soak.finished - soak.started, 3),
        kills=plan.kills,
        seed=plan.seed,
        **common,
    )
    ages = sorted(soak.unrecorded_age_ms)
    emit(
        metric="duplicates",
        value=soak.duplicates,
        unit="emails",
        per_kill=soak.resent,
        baseline=base.duplicates,
        accepted_before_kill=sum(1 for age in ages if age > 0),
        accepted_before_kill_ms=None
        if not ages
        else {
            "min": round(ages[0], 1),
            "median": round(statistics.median(ages), 1),
            "max": round(ages[-1], 1),
        },
        **common,
    )
    emit(metric="restart_recovery", value=recovery(soak, full_rate), unit="s", **common)
    emit(
        metric="counters",
        value="agree with the records",
        windows=soak.window_totals,
        totals=soak.stats_totals,
        recorded_unacked=sum(k.recorded_unacked for k in soak.kills),
        **common,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
