"""GET /metrics with 10,000 busy queues: scrape time and bytes, against a raw Redis read.

    .venv/bin/python -m bench.metrics [--api-users 10] [--domains 1000] [--calls 30]

Setup: `--api-users` API_USERs each with a queue for each of `--domains`
recipient domains (10,000 queues by default), every queue busy: `--pending`
emails waiting (QueueStore.enqueue, the submission path's own call), every
tenth paused; totals for every queue (inbound, attempts with their durations,
deliveries and outcomes, counted through queue_engine.stats as the engine
counts them) under the capped domain labels (top 50, then `other`).

Timed: `--calls` scrapes of GET /metrics through the ASGI app
(httpx.ASGITransport, the real route and exposition) after `--warmup`. The
baseline, interleaved call by call, is a raw read of the same data with
redis-py: ZRANGE of the busy queues, then one pipeline of ZCARD ready, ZCARD
lease and HMGET pause per queue plus HGETALL of every totals hash, the obvious
way to read it and no formatting at all. A second reference times
prometheus-client's own generate_latest on as many pre-built samples as a
scrape returns (formatting alone).

  scrape_ms   p50/p99/min of GET /metrics; baseline: the raw read's p50;
              ratio = scrape p50 / raw read p50 (below 1: the scrape, text
              included, is faster than reading the data naively)
  scrape_bytes  response size and sample count

Everything on uvloop (`app.runtime.run`) against a fresh embedded Redis in a
temp dir. Results are JSON lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import httpx
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.asyncio import Redis

from app import runtime
from bench.delivery import machine_fields
from bench.spine import temp_redis
from bench.windows import percentile, redis_version
from queue_engine import keys
from queue_engine.config import EngineConfig
from queue_engine.domain_labels import DomainLabels
from queue_engine.queues import QueueStore
from queue_engine.stats import count_attempts, count_inbound, count_outcomes
from queue_engine.statuses import PauseReason
from web.api import ApiConfig
from web.app import create_web_app

BENCH = "metrics"
TOP_DOMAINS = 50
TOTALS = (
    keys.METRIC_QUEUE_TOTALS,
    keys.METRIC_OUTCOMES,
    keys.METRIC_SPAM_REPORTS,
    keys.METRIC_SMTP_SECONDS,
)
OUTCOME_NAMES = ["delivered", "temporary"]
"""Outcomes of each queue's two attempts."""
OUTCOMES = (("delivered", ""), ("invalid", "address_not_exist"), ("soft_bounce", "spam_rejected"))


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: object) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


async def populate(redis: Redis, args: argparse.Namespace) -> list[str]:
    """Every queue busy, every tenth paused, totals for all of them; returns the tags."""
    now_ms = int(time.time() * 1000)
    domains = [f"d{d:05}.bench.example" for d in range(args.domains)]
    labels = await DomainLabels(redis).claim(domains, TOP_DOMAINS)
    queues = QueueStore(redis)
    tags = []
    for u in range(args.api_users):
        api_user = f"bench-{u:03}"
        async with redis.pipeline(transaction=False) as pipe:
            queued = {}
            for d, domain in enumerate(domains):
                tag = keys.queue_tag(api_user, domain)
                ids = [f"{u:03}{d:05}{i:04}" for i in range(args.pending)]
                await queues.enqueue(pipe, tag, ids, now_ms)
                queued[tag] = len(ids)
                seconds = [0.05 * (1 + d % 40), 2.0]
                count_attempts(pipe, api_user, labels[domain], OUTCOME_NAMES, seconds, 1)
                count_outcomes(pipe, {(s, r, labels[domain]): 1 for s, r in OUTCOMES})
                tags.append(tag)
            count_inbound(pipe, queued, labels, now_ms)
            await pipe.execute()
        for tag in tags[-args.domains :: 10]:
            await queues.pause(tag, PauseReason.IP_QUOTA, now_ms - 60_000, now_ms + 3_600_000)
        log(f"{len(tags)} queues")
    return tags


async def raw_read(redis: Redis) -> int:
    """The same data the naive way: per-queue commands in one pipeline, no formatting."""
    tags = await redis.zrange(keys.QUEUES_DUE, 0, -1)
    async with redis.pipeline(transaction=False) as pipe:
        for tag in tags:
            pipe.zcard(keys.queue_ready(tag))
            pipe.zcard(keys.queue_lease(tag))
            pipe.hmget(keys.queue_pause(tag), ["reason", "since_ms", "until_ms"])
        for key in TOTALS:
            pipe.hgetall(key)
        pipe.smembers(keys.METRIC_DOMAINS)
        replies = await pipe.execute()
    return len(replies)


def prebuilt(samples: int) -> list[Metric]:
    """As many gauge samples as a scrape, in families of 100, for generate_latest alone."""
    families = []
    for f in range(0, samples, 100):
        family = GaugeMetricFamily(f"bench_family_{f}", "help", labels=["api_user", "domain"])
        for i in range(f, min(f + 100, samples)):
            family.add_metric([f"bench-{i % 10:03}", f"d{i:05}.bench.example"], i)
        families.append(family)
    return families


class _Prebuilt:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


async def run(url: str, args: argparse.Namespace) -> None:
    redis = runtime.connect(url)
    try:
        emit(metric="machine", **machine_fields(), redis=await redis_version(redis))
        tags = await populate(redis, args)
        app = create_web_app(ApiConfig(engine=EngineConfig()), redis)
        scrape_times: list[float] = []
        raw_times: list[float] = []
        body = b""
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:
            for i in range(args.warmup + args.calls):
                start = time.perf_counter()
                response = await client.get("/metrics")
                scraped = time.perf_counter() - start
                if response.status_code != 200 or b"mailpulse_redis_up 1.0" not in response.content:
                    raise SystemExit(f"bench: GET /metrics: {response.status_code}")
                body = response.content
                start = time.perf_counter()
                await raw_read(redis)
                raw = time.perf_counter() - start
                if i >= args.warmup:
                    scrape_times.append(scraped)
                    raw_times.append(raw)
        lines = body.splitlines()
        samples = sum(1 for line in lines if line and not line.startswith(b"#"))
        collector = _Prebuilt(prebuilt(samples))
        format_times = []
        for _ in range(args.calls):
            start = time.perf_counter()
            generate_latest(collector)
            format_times.append(time.perf_counter() - start)
        p50, raw_p50 = statistics.median(scrape_times), statistics.median(raw_times)
        emit(
            metric="scrape_ms",
            value=round(1000 * p50, 2),
            unit="ms (p50)",
            p50_ms=round(1000 * p50, 2),
            p99_ms=round(1000 * percentile(scrape_times, 99), 2),
            min_ms=round(1000 * min(scrape_times), 2),
            baseline=round(1000 * raw_p50, 2),
            baseline_what="raw redis-py read of the same data (pipelined per-queue commands)",
            ratio=round(p50 / raw_p50, 3),
            generate_latest_ms=round(1000 * statistics.median(format_times), 2),
            target_ms=200,
            queues=len(tags),
            busy_queues=len(tags),
            calls=args.calls,
        )
        emit(
            metric="scrape_bytes",
            value=len(body),
            unit="bytes",
            samples=samples,
            mailpulse_samples=sum(1 for line in lines if line.startswith(b"mailpulse_")),
            queues=len(tags),
            top_domains=TOP_DOMAINS,
        )
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.metrics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-users", type=int, default=10)
    parser.add_argument("--domains", type=int, default=1000, help="recipient domains per API_USER")
    parser.add_argument("--pending", type=int, default=2, help="pending emails per queue")
    parser.add_argument("--calls", type=int, default=30, help="timed scrapes")
    parser.add_argument("--warmup", type=int, default=3, help="untimed scrapes first")
    args = parser.parse_args(argv)
    if min(args.api_users, args.domains, args.pending, args.calls) < 1:
        parser.error("counts must be >= 1")
    with temp_redis(BENCH) as redis:
        runtime.run(run(redis.url, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
