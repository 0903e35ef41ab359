"""Open and click requests against the running web app, vs a bare Starlette endpoint.

    .venv/bin/python -m bench.tracking [--seconds 5] [--connections 32] [--emails 1000]

Starts a throwaway system (embedded Redis in a temp dir, `mailpulse web`, its
own process under uvicorn on uvloop as in production), stores `--emails` email
records through the real submission code, then drives `GET /t/o/<token>`
(pixel) and `GET /t/c/<token>` (redirect) with genuine tokens spread over those
emails, from `--connections` keep-alive HTTP/1.1 connections, each with one
request in flight (a small raw asyncio client, far cheaper per request than the
server). Every request is recorded on its email, as in production.

Baseline, in the same run: a bare Starlette app (no middleware, no Redis) in
its own process, served the same way (uvicorn inside app.runtime.run), whose
two routes answer the same bytes: the same 43-byte GIF with the same headers,
the same 302 with the same Location. Phases alternate baseline and mailpulse,
`--rounds` times; the best round of each counts. ratio = mailpulse / baseline.
At the end the opens and clicks counted on the records must equal the requests
answered. Results are JSON lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import runtime
from app.embedded_redis import EmbeddedRedis
from bench.delivery import machine_fields
from bench.spine import (
    ACCOUNT,
    API_USER,
    HTML,
    SENDER,
    SUBJECT,
    System,
    cpu_seconds,
    create_credentials,
    free_port,
    start_module,
    stop_process,
    wait_listening,
)
from queue_engine import keys
from queue_engine.accounts import EmailType, Principal
from queue_engine.config import EngineConfig
from queue_engine.submission import SendRequest, Submitter
from queue_engine.tracking import click_token, open_token

BENCH = "tracking"
SECRET = "bench-tracking-secret"
TARGET = "https://shop.bench.example/spring-sale?utm_source=mailpulse&utm_medium=email"
"""The tracked link: what every click redirects to."""


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


# --- the baseline server: the same bytes, nothing else ---------------------------------


def serve_baseline(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import RedirectResponse, Response
    from starlette.routing import Route

    from web.tracking import NO_STORE, PIXEL

    async def pixel(request: Request) -> Response:
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    async def click(request: Request) -> Response:
        return RedirectResponse(TARGET, status_code=302, headers=NO_STORE)

    app = Starlette(routes=[Route("/t/o/{token}", pixel), Route("/t/c/{token}", click)])
    # As app/cli.py serves the real app: uvicorn's Server inside app.runtime.run (uvloop).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )
    runtime.run(uvicorn.Server(config).serve())


# --- the system under test --------------------------------------------------------------


async def store_emails(url: str, n: int) -> list[str]:
    """n email records through the real submission code, in calls of up to 1,000."""
    redis = runtime.connect(url)
    try:
        submitter = Submitter(redis, EngineConfig(secret=SECRET.encode()))
        principal = Principal(ACCOUNT, API_USER, EmailType.MARKETING)
        ids: list[str] = []
        for start in range(0, n, 1000):
            to = [f"rcpt{i:06d}@bench.example" for i in range(start, min(n, start + 1000))]
            request = SendRequest.parse(
                {"from": SENDER, "to": to, "subject": SUBJECT, "html": HTML}
            )
            ids += await submitter.submit(principal, request, "127.0.0.1", int(time.time() * 1000))
        return ids
    finally:
        await redis.aclose()


async def recorded(url: str, ids: list[str]) -> tuple[int, int]:
    """(opens, clicks) counted on the records."""
    redis = runtime.connect(url)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for email_id in ids:
                pipe.hmget(keys.email(email_id), ["opens_count", "clicks_count"])
            rows = await pipe.execute()
    finally:
        await redis.aclose()
    return sum(int(o or 0) for o, _ in rows), sum(int(c or 0) for _, c in rows)


# --- the load ---------------------------------------------------------------------------


@dataclass
class Phase:
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _lane(
    port: int, requests: list[bytes], offset: int, deadline: float, phase: Phase
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            at = head.lower().find(b"content-length:")
            length = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
            if length:
                await reader.readexactly(length)
            phase.statuses[status] += 1
            phase.requests += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def drive(
    port: int, paths: list[str], seconds: float, connections: int, pids: dict[str, int | None]
) -> Phase:
    requests = [
        f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench/1.0\r\n\r\n".encode()
        for p in paths
    ]
    phase = Phase()
    cpu0 = {part: cpu_seconds(pid) for part, pid in pids.items()}
    start = time.perf_counter()
    step = max(1, len(paths) // connections)
    await asyncio.gather(
        *(_lane(port, requests, n * step, start + seconds, phase) for n in range(connections))
    )
    phase.seconds = time.perf_counter() - start
    phase.cpu = {part: cpu_seconds(pid) - cpu0[part] for part, pid in pids.items()}
    return phase


# --- the run ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tracking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="before each phase, untimed")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the four phases")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--emails", type=int, default=1000, help="emails the tokens are for")
    parser.add_argument("--profile", type=Path, help="py-spy the web process into this dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline)
        return 0
    if args.seconds <= 0 or args.rounds < 1 or args.connections < 1 or args.emails < 1:
        parser.error("need positive --seconds, --rounds, --connections and --emails")

    machine = machine_fields()
    tmp = Path(tempfile.mkdtemp(prefix="mailpulse-bench-tracking-"))
    baseline_proc: subprocess.Popen[bytes] | None = None
    best: dict[tuple[str, str], Phase] = {}
    answered: Counter[str] = Counter()
    try:
        data_dir = tmp / "data"
        redis = EmbeddedRedis(data_dir)
        url = redis.start()
        http_port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": url,
            "MAILPULSE_DATA_DIR": str(data_dir),
            "MAILPULSE_HTTP_PORT": str(http_port),
            "MAILPULSE_SECRET_KEY": SECRET,
            "MAILPULSE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        sys_ = System(tmp, redis, url, env, http_port)
        try:
            runtime.run(create_credentials(url))
            log(f"storing {args.emails} email records through Submitter")
            ids = runtime.run(store_emails(url, args.emails))
            sys_.start_part("web", args.profile)
            if not wait_listening(http_port, sys_.procs["web"], timeout=30):
                raise SystemExit("bench: mailpulse web did not start")
            base_port = free_port()
            baseline_proc = start_module(
                ["bench.tracking", "--serve-baseline", str(base_port)], base_port, "the baseline"
            )
            secret = SECRET.encode()
            paths = {
                "open": [f"/t/o/{open_token(secret, i)}" for i in ids],
                "click": [f"/t/c/{click_token(secret, i, TARGET)}" for i in ids],
            }
            targets = {
                "baseline": (base_port, {"server": baseline_proc.pid}),
                "mailpulse": (http_port, {"server": sys_.procs["web"].pid, "redis": redis.pid}),
            }
            log(f"{args.rounds} rounds of {args.seconds:g}s phases, {args.connections} connections")
            for round_ in range(args.rounds):
                for kind in ("open", "click"):
                    for who, (port, pids) in targets.items():
                        warm = runtime.run(
                            drive(port, paths[kind], args.warmup, args.connections, {})
                        )
                        phase = runtime.run(
                            drive(port, paths[kind], args.seconds, args.connections, pids)
                        )
                        if who == "mailpulse":
                            answered[kind] += sum(
                                n for p in (warm, phase) for s, n in p.statuses.items()
                                if s in (200, 302)
                            )  # fmt: skip
                        log(f"round {round_ + 1} {kind:5} {who:9} {phase.per_s:8,.0f} req/s "
                            f"{dict(phase.statuses)}")  # fmt: skip
                        if phase.per_s > best.get((kind, who), Phase()).per_s:
                            best[kind, who] = phase
            opens, clicks = runtime.run(recorded(url, ids))
            sys_.check_alive()
        finally:
            sys_.stop()
    finally:
        if baseline_proc is not None:
            stop_process(baseline_proc)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    emit(metric="machine", **machine)
    common = {"connections": args.connections, "seconds": args.seconds, "rounds": args.rounds}
    for kind, expected in (("open", 200), ("click", 302)):
        ours, bare = best[kind, "mailpulse"], best[kind, "baseline"]
        emit(
            metric=f"{kind}_requests_per_s",
            value=round(ours.per_s, 1),
            unit="req/s",
            baseline=round(bare.per_s, 1),
            ratio=round(ours.per_s / bare.per_s, 3),
            target=3000,
            statuses={str(s): n for s, n in ours.statuses.items()},
            all_expected=set(ours.statuses) == {expected},
            cpu_us_per_request={
                part: round(1e6 * s / ours.requests, 1) for part, s in ours.cpu.items()
            },
            baseline_cpu_us_per_request=round(1e6 * bare.cpu["server"] / bare.requests, 1),
            emails=args.emails,
            **common,
        )
    emit(
        metric="events_counted",
        value={"opens": opens, "clicks": clicks},
        answered={"opens": answered["open"], "clicks": answered["click"]},
        exact=(opens, clicks) == (answered["open"], answered["click"]),
        unit="events on the records vs requests answered (warm-ups included)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
