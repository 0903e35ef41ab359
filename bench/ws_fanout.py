"""Websocket fan-out: the console's queue stream to N clients of one web process.

    .venv/bin/python -m bench.ws_fanout [--clients 100,500,1000,3000]
        [--scenarios typical,busy,worst] [--queues 200] [--workers 4] [--ticks 5]

One account with `--queues` queues (pending mail stored through the real
submission path), one web process (uvicorn, the app of `mailpulse web`, its
console ticking every `--tick` seconds instead of 5 so the run is short; a
tick's work does not depend on the interval), and N websocket clients (the
`websockets` library on uvloop, spread over `--workers` client processes)
logged in to that account through a signed session cookie. Every tick the
server reads the queues once, works out what changed once, and sends the same
frames to every client: JSON numbers of the queues that moved, the rows whose
look changed (if any), then the summary stamped with the tick's time.

A driver changes the queues half-way between ticks, per scenario:

  typical   a tenth of the queues get traffic (their numbers move every tick),
            the rest hold their mail (nothing changes): what a page sees most;
  busy      every queue gets traffic: every queue's numbers move, no row's look;
  worst     every queue gets traffic and is paused, then resumed, on alternate
            ticks: every row is re-rendered and resent, every tick.

  lag_p50_ms / lag_p99_ms  receipt of a tick's last frame (the summary) minus
                           its stamp, over every client and every measured tick
                           (the ticks stamped while the CPU is measured, which
                           starts 1.5 ticks after the last client connected);
  server_cpu_pct           CPU of the web process over the measured ticks, as a
                           share of one core (clients_cpu_pct: all the client
                           processes together);
  server_cpu_ms_per_tick   the same per tick: what one tick to N clients costs
                           the server, whatever else the machine is doing;
  tick_bytes               bytes one client received for a measured tick.

The baseline, in the same run, scenario and N: a bare Starlette app whose one
websocket route sends, each tick, the frames a console client received for
a measured tick (those ticks in turn, re-stamped) to every connected client,
nothing else; ratio = console / bare. Results are JSON lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from app import runtime
from app.embedded_redis import EmbeddedRedis
from bench.delivery import machine_fields
from bench.spine import ACCOUNT, cpu_seconds, free_port, stop_process, wait_listening
from bench.windows import percentile, populate_queues
from queue_engine.queues import QueueStore
from queue_engine.statuses import PauseReason
from queue_engine.windows import RateWindows, window_keys

BENCH = "ws_fanout"
SECRET = "ws-fanout-bench-secret"
SCENARIOS = ("typical", "busy", "worst")
_STAMP = re.compile(rb'("t":|data-t=")(\d+)')
"""The tick's time (ms): `t` of the JSON numbers, `data-t` of the HTML summary."""
_SUMMARY = b'<div id="queue-summary"'


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


# --- the servers (run as `python -m bench.ws_fanout --serve app|bare`) ----------------------


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    if args.serve == "app":
        from queue_engine.config import EngineConfig
        from web.api import ApiConfig
        from web.app import create_web_app

        api = ApiConfig(engine=EngineConfig(secret=SECRET.encode()), console_tick_seconds=args.tick)
        app: Any = create_web_app(api, runtime.connect(args.redis_url))
    else:
        app = bare_app(Path(args.frames), args.tick)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="on",
        ws_per_message_deflate=args.deflate,  # off in `mailpulse web`
    )
    server = uvicorn.Server(config)
    runtime.run(server.serve())


def restamp(frames: list[bytes], now_ms: int) -> list[bytes]:
    stamp = str(now_ms).encode()
    return [_STAMP.sub(lambda m: m.group(1) + stamp, f) for f in frames]


def bare_app(frames_file: Path, tick: float) -> Any:
    """The floor: accept, keep a set of sockets, send the same strings to all each tick
    (the ticks a console client received, in turn)."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    recorded = [[f.encode() for f in tick] for tick in json.loads(frames_file.read_text())]
    clients: set[WebSocket] = set()

    async def send(ws: WebSocket, frames: list[str]) -> None:
        with contextlib.suppress(Exception):
            for frame in frames:
                await ws.send_text(frame)

    async def broadcast() -> None:
        for n in range(1_000_000):
            await asyncio.sleep(tick - time.time() % tick)
            now_ms = int(time.time() * 1000)
            frames = [f.decode() for f in restamp(recorded[n % len(recorded)], now_ms)]
            await asyncio.gather(*(send(ws, frames) for ws in list(clients)))

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        clients.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(ws)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(broadcast())
        yield
        task.cancel()

    return Starlette(routes=[WebSocketRoute("/ws/queues", endpoint)], lifespan=lifespan)


@contextlib.contextmanager
def server(mode: str, args: argparse.Namespace, frames: Path) -> Iterator[Any]:
    port = free_port()
    command = [sys.executable, "-m", "bench.ws_fanout", "--serve", mode, "--port", str(port)]
    command += ["--redis-url", args.redis_url, "--tick", str(args.tick), "--frames", str(frames)]
    command += ["--deflate"] if args.deflate else []
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=Path(__file__).parent.parent)
    try:
        if not wait_listening(port, proc, 30):
            raise RuntimeError(f"{mode} server did not start")
        yield proc, port
    finally:
        stop_process(proc)


# --- the client workers (run as `python -m bench.ws_fanout --worker N`) --------------------


def session_cookie() -> str:
    from web.session import COOKIE, Session, SessionCodec

    session = Session("bench", ACCOUNT, "admin@bench.example", int(time.time()) + 3600)
    return f"{COOKIE}={SessionCodec(SECRET.encode()).encode(session)}"


class Listener:
    """One worker's clients: per tick stamp, each client's lag and one client's frames."""

    def __init__(self) -> None:
        self.lags: dict[int, list[float]] = {}
        self.frames: dict[int, list[bytes]] = {}
        self._tick: list[bytes] = []

    async def client(
        self, url: str, deflate: bool, opened: list[int], ready: asyncio.Event
    ) -> None:
        import websockets

        async with websockets.connect(
            url,
            origin=url.replace("ws://", "http://").rsplit("/ws", 1)[0],  # type: ignore[arg-type]
            additional_headers={"cookie": session_cookie()},
            max_size=None,
            compression="deflate" if deflate else None,
            open_timeout=120,
        ) as ws:
            opened[0] += 1
            if opened[0] == opened[1]:
                ready.set()
            recorder = opened[0] == 1
            while True:
                frame = await ws.recv(decode=False)  # bytes: no UTF-8 decoding per client
                if recorder:
                    self._tick.append(frame)
                if frame.startswith(_SUMMARY):
                    now = time.time() * 1000
                    stamp = _STAMP.search(frame)
                    assert stamp is not None
                    t = int(stamp.group(2))
                    self.lags.setdefault(t, []).append(now - t)
                    if recorder:
                        self.frames[t], self._tick = self._tick, []


async def worker(url: str, n: int, deflate: bool) -> None:
    """Connect n clients, say "ready", listen until stdin closes, print what was seen."""
    listener = Listener()
    opened, ready = [0, n], asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    for start in range(0, n, 50):  # in waves, as a crowd of pages would
        for _ in range(start, min(n, start + 50)):
            tasks.append(asyncio.create_task(listener.client(url, deflate, opened, ready)))
        await asyncio.sleep(0.05)
    await asyncio.wait_for(ready.wait(), 300)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    frames = {t: [f.decode() for f in fs] for t, fs in listener.frames.items()}
    print(json.dumps({"lags": listener.lags, "frames": frames}), flush=True)


def run_worker(args: argparse.Namespace) -> None:
    import uvloop

    uvloop.run(worker(args.url, args.worker, args.deflate))


# --- the driver: what changes between ticks -------------------------------------------------


async def drive(redis_url: str, tags: list[str], scenario: str, tick: float) -> None:
    """Half-way between ticks (the server reads a settled state): traffic, pauses."""
    redis = runtime.connect(redis_url)
    windows, store = RateWindows(redis), QueueStore(redis)
    busy = tags if scenario != "typical" else tags[: max(1, len(tags) // 10)]
    try:
        for n in range(1_000_000):
            await asyncio.sleep(tick - (time.time() - tick / 2) % tick)
            now_ms = int(time.time() * 1000)
            async with redis.pipeline(transaction=False) as pipe:
                for i, tag in enumerate(busy):
                    await windows.add(
                        pipe, tag, now_ms // 1000, inbound=1 + (i + n) % 5, attempted=2, outbound=1
                    )
                await pipe.execute()
            if scenario == "worst":
                for tag in tags:
                    if n % 2:
                        await store.resume(tag, now_ms)
                    else:
                        await store.pause(
                            tag, PauseReason.IP_QUOTA, now_ms, now_ms + 600_000, "451"
                        )
    finally:
        await redis.aclose()


# --- one round: a server, the workers, the driver ---------------------------------------------


@contextlib.contextmanager
def workers(url: str, n: int, args: argparse.Namespace) -> Iterator[list[subprocess.Popen[str]]]:
    shares = [n // args.workers + (i < n % args.workers) for i in range(args.workers)]
    procs = []
    for share in filter(None, shares):
        command = [sys.executable, "-m", "bench.ws_fanout", "--worker", str(share), "--url", url]
        command += ["--deflate"] if args.deflate else []
        procs.append(
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).parent.parent,
            )
        )
    try:
        yield procs
    finally:
        for proc in procs:
            stop_process(proc)  # type: ignore[arg-type]


async def measure(
    port: int, pid: int, n: int, scenario: str, args: argparse.Namespace, tags: list[str]
) -> dict[str, Any]:
    driver = asyncio.create_task(drive(args.redis_url, tags, scenario, args.tick))
    url = f"ws://127.0.0.1:{port}/ws/queues"
    loop = asyncio.get_running_loop()
    try:
        with workers(url, n, args) as procs:
            for proc in procs:
                assert proc.stdout is not None
                line = await loop.run_in_executor(None, proc.stdout.readline)
                if line.strip() != "ready":
                    raise RuntimeError(f"client worker failed: {line!r}")
            await asyncio.sleep(args.tick * 1.5)  # the tick in flight while the last connected
            start_ms, cpu0, wall0 = time.time() * 1000, cpu_seconds(pid), time.monotonic()
            clients0 = sum(cpu_seconds(p.pid) for p in procs)
            await asyncio.sleep(args.tick * args.ticks)
            end_ms, cpu1, wall1 = time.time() * 1000, cpu_seconds(pid), time.monotonic()
            clients1 = sum(cpu_seconds(p.pid) for p in procs)
            await asyncio.sleep(min(2.0, args.tick))  # the last tick's stragglers
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.close()
            results = [
                json.loads(await loop.run_in_executor(None, p.stdout.read))  # type: ignore[union-attr]
                for p in procs
            ]
    finally:
        driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driver
    lags: dict[int, list[float]] = {}
    for result in results:
        for t, values in result["lags"].items():
            lags.setdefault(int(t), []).extend(values)
    ticks = sorted(t for t in lags if start_ms <= t < end_ms)
    measured = [lag for t in ticks for lag in lags[t]]
    recorded = {int(t): fs for t, fs in results[0]["frames"].items() if int(t) in ticks}
    sizes = sorted(sum(len(f.encode()) for f in fs) for fs in recorded.values())
    wall = wall1 - wall0
    return {
        "p50": percentile(measured, 50) if measured else None,
        "p99": percentile(measured, 99) if measured else None,
        "max": max(measured) if measured else None,
        "samples": len(measured),
        "ticks": len(ticks),
        "min_clients_per_tick": min((len(lags[t]) for t in ticks), default=0),
        "cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1),
        "cpu_ms_per_tick": round(1000 * (cpu1 - cpu0) / (wall / args.tick), 1),
        "clients_cpu_pct": round(100 * (clients1 - clients0) / wall, 1),
        "tick_bytes": sizes,
        "frames": [recorded[t] for t in sorted(recorded)],  # what the bare server sends
    }


async def populate(redis_url: str, args: argparse.Namespace) -> list[str]:
    """The queues with their mail, and quiet windows: only the driver makes traffic."""
    redis = runtime.connect(redis_url)
    try:
        _, tags = await populate_queues(redis, args.queues, args.pending)
        await redis.delete(*(key for tag in tags for key in window_keys(tag)))
        return tags
    finally:
        await redis.aclose()


def run_round(
    mode: str, n: int, scenario: str, args: argparse.Namespace, tags: list[str], frames: Path
) -> dict[str, Any]:
    with server(mode, args, frames) as (proc, port):
        return runtime.run(measure(port, proc.pid, n, scenario, args, tags))


def report(
    n: int, scenario: str, args: argparse.Namespace, console: dict[str, Any], bare: dict[str, Any]
) -> None:
    common = {"clients": n, "scenario": scenario, "queues": args.queues, "tick_s": args.tick}
    common |= {"workers": args.workers, "deflate": args.deflate}
    for metric in ("p50", "p99"):
        emit(
            metric=f"lag_{metric}_ms",
            value=round(console[metric], 1),
            unit="ms",
            baseline=round(bare[metric], 1),
            ratio=round(console[metric] / bare[metric], 2),
            samples=console["samples"],
            **common,
        )
    emit(
        metric="server_cpu_pct",
        value=console["cpu_pct"],
        unit="% of one core",
        baseline=bare["cpu_pct"],
        clients_cpu_pct=console["clients_cpu_pct"],
        **common,
    )
    emit(
        metric="server_cpu_ms_per_tick",
        value=console["cpu_ms_per_tick"],
        unit="ms",
        baseline=bare["cpu_ms_per_tick"],
        **common,
    )
    sizes = console["tick_bytes"]
    emit(
        metric="tick_bytes",
        value=sizes[len(sizes) // 2] if sizes else None,
        unit="bytes per client",
        min=min(sizes, default=None),
        max=max(sizes, default=None),
        **common,
    )
    for name, r in (("console", console), ("bare", bare)):
        log(
            f"  {name}: lag p50/p99/max {r['p50']:.0f}/{r['p99']:.0f}/{r['max']:.0f} ms,"
            f" cpu {r['cpu_pct']}% = {r['cpu_ms_per_tick']} ms a tick (clients"
            f" {r['clients_cpu_pct']}%), {r['ticks']} ticks,"
            f" every one to at least {r['min_clients_per_tick']} clients, bytes {r['tick_bytes']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="100,500,1000,3000", help="comma-separated N")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="of " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--queues", type=int, default=200)
    parser.add_argument("--pending", type=int, default=5, help="emails pending per queue")
    parser.add_argument("--tick", type=float, default=2.0, help="seconds between snapshots")
    parser.add_argument("--ticks", type=int, default=5, help="ticks measured per round")
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="permessage-deflate: clients ask for it as browsers do, the servers accept it "
        "as uvicorn does by default (mailpulse web declines it)",
    )
    parser.add_argument("--serve", choices=["app", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--frames", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.serve:
        serve(args)
        return 0
    if args.worker:
        run_worker(args)
        return 0
    scenarios = args.scenarios.split(",")
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    tmp = Path(tempfile.mkdtemp(prefix="ws-fanout-"))
    redis_server = EmbeddedRedis(tmp)
    try:
        args.redis_url = redis_server.start()
        log(f"{args.queues} queues x {args.pending} pending, {args.workers} client processes")
        tags = runtime.run(populate(args.redis_url, args))
        frames_file = tmp / "frames.json"
        for scenario in scenarios:
            for n in (int(x) for x in args.clients.split(",")):
                log(f"{scenario}: console, {n} clients")
                console = run_round("app", n, scenario, args, tags, frames_file)
                frames_file.write_text(json.dumps(console["frames"]))
                log(f"{scenario}: bare Starlette broadcast, {n} clients")
                bare = run_round("bare", n, scenario, args, tags, frames_file)
                report(n, scenario, args, console, bare)
        emit(metric="machine", **machine_fields())
    finally:
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
