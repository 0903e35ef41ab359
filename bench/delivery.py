"""Delivery with limits enabled: queues -> engine -> SMTP sink, vs raw aiosmtplib.

    .venv/bin/python -m bench.delivery [--n 20000] [--connections 16] [--domains 4]

The engine-only figure: N emails (one recipient each, spread evenly over
`--domains` recipient domains, so that many queues) are stored through the real
submission code, `queue_engine.submission.Submitter` (records, indexes, body,
queue entries, inbound windows), called in this process while the engine
process is paused (SIGSTOP); the clock starts when the engine is resumed and
stops when the account's `delivered` index holds all N. The web API is not
involved (bench.spine measures that path).

Limits are on, from a policy file written for the run: every recipient domain
is its own provider with `max_connections = connections / domains` (so the
engine may hold exactly `--connections` connections in all, like the baseline),
`messages_per_connection = 100`, and domain and IP quotas per hour and per day
set far above N (they are counted, never reached: `--quotas` turns them off to
see what they cost). The engine is `mailpulse engine` (its own process, uvloop,
default settings: batch 200) with routes `"*"` to the sink.

Baseline: raw aiosmtplib (bench.spine.raw_baseline: MAIL/RCPT/DATA, the same
message bytes) over `--connections` persistent connections to the same sink,
on the same event loop as the engine (uvloop, app.runtime.run), once before and
once after the engine in the same run; the faster round counts. The sink is
Postfix's smtp-sink as bench.spine finds or extracts it.
Results are JSON lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import runtime
from bench.spine import (
    ACCOUNT,
    API_USER,
    HTML,
    REPO_DIR,
    SENDER,
    SUBJECT,
    TEXT,
    Sink,
    System,
    baseline_round,
    cpu_model,
    cpu_seconds,
    create_credentials,
    nproc,
    recipients,
    start_sink,
    system,
    wait_delivered,
    wire_messages,
)
from queue_engine import keys
from queue_engine.accounts import EmailType, Principal
from queue_engine.config import EngineConfig
from queue_engine.submission import SendRequest, Submitter

BENCH = "delivery"
QUOTA_HOUR = 50_000_000
QUOTA_DAY = 500_000_000


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


def git_head() -> str:
    """The commit measured, "+changes" when the engine or web code differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "queue_engine", "web"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+changes" if dirty else head or "unknown"


def machine_fields() -> dict[str, Any]:
    """The `machine` line's fields, as bench.spine prints them, plus load and code."""
    return {
        "value": f"{nproc()} x {cpu_model()}",
        "nproc": nproc(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "code": git_head(),
    }


def domain_names(domains: int) -> list[str]:
    """The recipient domains of bench.spine.recipients, in the same order."""
    return [f"d{d}.bench.example" for d in range(domains)]


def policy_text(args: argparse.Namespace) -> str:
    per_domain = args.connections // args.domains
    ip_quotas = args.quotas == "all"
    domain_quotas = args.quotas in ("all", "domain")
    lines = [
        "[egress]",
        "sources = []",
        f"quota_per_hour = {QUOTA_HOUR if ip_quotas else 0}",
        f"quota_per_day = {QUOTA_DAY if ip_quotas else 0}",
        "",
        "[default]",
        f"max_connections = {per_domain}",
        "new_connections_per_minute = 100000",
        "messages_per_connection = 100",
        f"quota_per_hour = {QUOTA_HOUR if domain_quotas else 0}",
        f"quota_per_day = {QUOTA_DAY if domain_quotas else 0}",
        "throttle_pause_seconds = 300",
    ]
    return "\n".join(lines) + "\n"


async def wait_engine(sys_: System, limit_s: float = 30.0) -> None:
    """The engine listens for wake-ups, so it is fully started."""
    deadline = time.monotonic() + limit_s
    redis = runtime.connect(sys_.url)
    try:
        while True:
            sys_.check_alive()
            subscribed = await redis.pubsub_numsub(keys.WAKE_CHANNEL)
            if subscribed and subscribed[0][1] >= 1:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: engine not ready in {limit_s:.0f}s")
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()


async def inject(url: str, rcpts: list[str], batch: int) -> float:
    """Store every recipient through Submitter, `batch` per call; returns the seconds taken."""
    redis = runtime.connect(url)
    try:
        submitter = Submitter(redis, EngineConfig())
        principal = Principal(ACCOUNT, API_USER, EmailType.TRANSACTIONAL)
        start = time.perf_counter()
        for i in range(0, len(rcpts), batch):
            request = SendRequest.parse(
                {
                    "from": SENDER,
                    "to": rcpts[i : i + batch],
                    "subject": SUBJECT,
                    "text": TEXT,
                    "html": HTML,
                }
            )
            await submitter.submit(principal, request, "127.0.0.1", int(time.time() * 1000))
        return time.perf_counter() - start
    finally:
        await redis.aclose()


@dataclass
class DeliveryResult:
    inject_seconds: float
    seconds: float
    cpu: dict[str, float]
    max_open: int
    counters: dict[str, int]


async def drain(sys_: System, sink: Sink, n: int, domains: list[str]) -> DeliveryResult:
    """Resume the engine and wait until all n are delivered; CPU and limits seen meanwhile."""
    engine = sys_.procs["engine"]
    pids = {"engine": engine.pid, "redis": sys_.redis.pid, "sink": sink.proc.pid}
    redis = runtime.connect(sys_.url)
    slot_keys = [keys.connection_slots("default", d) for d in domains]
    try:
        await redis.ping()
        cpu0 = {part: cpu_seconds(pid) for part, pid in pids.items()}
        cpu0["bench"] = time.process_time()
        start = time.perf_counter()
        engine.send_signal(signal.SIGCONT)
        now, max_open = await wait_delivered(redis, sys_, n, slot_keys)
        cpu = {part: cpu_seconds(pid) - cpu0[part] for part, pid in pids.items()}
        cpu["bench"] = time.process_time() - cpu0["bench"]
        seconds = now - start
        log(f"all {n} delivered {seconds:.2f}s after the engine resumed")
        return DeliveryResult(0.0, seconds, cpu, max_open, await limit_counters(redis))
    finally:
        if engine.poll() is None:
            engine.send_signal(signal.SIGCONT)
        await redis.aclose()


async def limit_counters(redis: Any) -> dict[str, int]:
    """What the limiter counted: quota units taken, new connections opened."""
    totals = {"domain_quota_units": 0, "ip_quota_units": 0, "new_connections": 0}
    for pattern, name in (
        ("quota:{dom:*}:h:*", "domain_quota_units"),
        ("quota:{ip:*}:h:*", "ip_quota_units"),
        ("conn:*:new:*", "new_connections"),
    ):
        async for key in redis.scan_iter(match=pattern, count=1000):
            totals[name] += int(await redis.get(key) or 0)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.delivery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="emails (default 20000)")
    parser.add_argument(
        "--connections", type=int, default=16, help="SMTP connections in all (default 16)"
    )
    parser.add_argument("--domains", type=int, default=4, help="recipient domains = queues")
    parser.add_argument("--batch", type=int, default=1000, help="recipients per Submitter call")
    parser.add_argument(
        "--quotas",
        choices=["all", "domain", "none"],
        default="all",
        help="quotas in the policy (default all: domain and IP; diagnosis only otherwise)",
    )
    parser.add_argument("--sink", choices=["auto", "smtp-sink", "aiosmtpd"], default="auto")
    parser.add_argument("--profile", type=Path, help="py-spy the engine into this dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    if args.n < 1 or args.domains < 1 or not 1 <= args.batch <= 1000:
        parser.error("need --n >= 1, --domains >= 1, 1 <= --batch <= 1000")
    if args.connections < args.domains or args.connections % args.domains:
        parser.error("--connections must be a multiple of --domains (the limit per domain)")

    tmp = Path(tempfile.mkdtemp(prefix="mailpulse-bench-delivery-"))
    rcpts = recipients(args.n, args.domains)
    domains = domain_names(args.domains)
    message_bytes = len(wire_messages(rcpts[:1])[0])
    sink: Sink | None = None
    baselines: list[tuple[float, float]] = []
    machine = machine_fields()  # the load before the run

    def run_baseline(round_: str) -> None:
        assert sink is not None
        baselines.append(baseline_round(sink, rcpts, args.connections, round_))

    try:
        sink = start_sink(args.sink, tmp)
        log(f"baseline: raw aiosmtplib on uvloop, {args.n} messages of {message_bytes} bytes, "
            f"{args.connections} connections, before and after the engine")  # fmt: skip
        run_baseline("a")
        with system(sink, argparse.Namespace(connections=args.connections), tmp) as sys_:
            policy = tmp / "delivery-policy.toml"
            policy.write_text(policy_text(args))
            sys_.env["MAILPULSE_POLICY"] = str(policy)
            runtime.run(create_credentials(sys_.url))
            sys_.start_part("engine", args.profile)
            runtime.run(wait_engine(sys_))
            sys_.procs["engine"].send_signal(signal.SIGSTOP)  # started, connected, paused
            log(f"injecting {args.n} emails over {args.domains} domains through Submitter")
            inject_s = runtime.run(inject(sys_.url, rcpts, args.batch))
            log(f"injected in {inject_s:.2f}s; resuming the engine")
            result = runtime.run(drain(sys_, sink, args.n, domains))
            result.inject_seconds = inject_s
        run_baseline("b")
        sink.stop()
        sink_count = sink.messages()
        if sink_count is not None and sink_count != 3 * args.n:
            log(f"WARNING: the sink counted {sink_count} messages, expected {3 * args.n}")
    finally:
        if sink is not None:
            sink.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    baseline_s, baseline_cpu = min(baselines)
    baseline = args.n / baseline_s
    delivered = args.n / result.seconds
    common = {
        "sink": sink.name,
        "n": args.n,
        "connections": args.connections,
        "domains": args.domains,
        "quotas": args.quotas,
    }
    emit(metric="sink", value=sink.name, version=sink.version, sink_messages=sink_count)
    emit(metric="machine", **machine)
    emit(
        metric="policy",
        value=f"{args.domains} providers x max_connections {args.connections // args.domains}",
        max_connections_per_domain=args.connections // args.domains,
        messages_per_connection=100,
        new_connections_per_minute=100000,
        domain_quota_per_hour=QUOTA_HOUR if args.quotas != "none" else 0,
        ip_quota_per_hour=QUOTA_HOUR if args.quotas == "all" else 0,
        **common,
    )
    emit(
        metric="delivered_per_s",
        value=round(delivered, 1),
        unit="msg/s",
        baseline=round(baseline, 1),
        ratio=round(delivered / baseline, 3),
        seconds=round(result.seconds, 3),
        baseline_rounds_per_s=[round(args.n / wall, 1) for wall, _ in baselines],
        message_bytes=message_bytes,
        injected_by="queue_engine.submission.Submitter (engine paused until all stored)",
        loop="uvloop (engine and baseline)",
        **common,
    )
    emit(
        metric="submitter_per_s",
        value=round(args.n / result.inject_seconds, 1),
        unit="rcpt/s",
        seconds=round(result.inject_seconds, 3),
        batch=args.batch,
        note="Submitter.submit in the bench process, engine paused, one call at a time",
        **common,
    )
    emit(
        metric="cpu_us_per_msg",
        value={part: round(1e6 * s / args.n, 1) for part, s in result.cpu.items()},
        baseline_client=round(1e6 * baseline_cpu / args.n, 1),
        unit="us/msg",
        note="CPU per message from engine resume to the last delivery; baseline_client: "
        "raw aiosmtplib's process",
        **common,
    )
    emit(
        metric="limits_seen",
        value=result.max_open,
        unit="connections open at most (sampled every ~10 ms)",
        limit=args.connections,
        **result.counters,
        **common,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
