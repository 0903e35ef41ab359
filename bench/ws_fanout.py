"""Websocket fan-out: the console's queue snapshot to N clients of one web process.

    .venv/bin/python -m bench.ws_fanout [--clients 100,500,1000] [--queues 200] [--ticks 5]

One account with `--queues` queues (pending mail stored through the real
submission path, every rate window busy), one web process (uvicorn, the app of
`mailpulse web`, its console ticking every `--tick` seconds instead of 5 so the
run is short; a tick's work does not depend on the interval), and N websocket
clients (the `websockets` library, one process, uvloop) logged in to that
account through a signed session cookie. Every tick the server reads the 200
queues once, renders the rows once and sends the same two frames (JSON chart
points, then the HTML rows, both stamped with the tick's time) to every client.

  lag_p50_ms / lag_p99_ms  receipt of the HTML frame (the tick's last) minus its
                           stamp, over every
                           client and every measured tick (the first tick after
                           all clients connected is skipped);
  server_cpu_pct           CPU of the web process over the measured ticks, as a
                           share of one core.

The baseline, in the same run and with the same N: a bare Starlette app whose
one websocket route sends the same bytes (the frames the console produced,
re-stamped) to every connected client each tick, nothing else; ratio =
console p99 / bare p99. Results are JSON lines on stdout, progress on stderr.
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
from bench.windows import fill_windows, percentile, populate_queues

BENCH = "ws_fanout"
SECRET = "ws-fanout-bench-secret"
_STAMP = re.compile(rb'("t":|data-t=")(\d+)')
"""The tick's time (ms) in both frames: `t` of the JSON points, `data-t` of the HTML rows."""


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

        config = ApiConfig(
            engine=EngineConfig(secret=SECRET.encode()), console_tick_seconds=args.tick
        )
        app: Any = create_web_app(config, runtime.connect(args.redis_url))
    else:
        app = bare_app(Path(args.frames), args.tick)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")
    )
    runtime.run(server.serve())


def bare_app(frames_file: Path, tick: float) -> Any:
    """The floor: accept, keep a set of sockets, send the same strings to all each tick."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    points, html = json.loads(frames_file.read_text())
    clients: set[WebSocket] = set()

    async def send(ws: WebSocket, frames: tuple[str, ...]) -> None:
        with contextlib.suppress(Exception):
            for frame in frames:
                await ws.send_text(frame)

    async def broadcast() -> None:
        while True:
            await asyncio.sleep(tick - time.time() % tick)
            frames = restamp((points, html), int(time.time() * 1000))
            await asyncio.gather(*(send(ws, frames) for ws in list(clients)))

    def restamp(frames: tuple[str, ...], now_ms: int) -> tuple[str, ...]:
        stamp = str(now_ms).encode()
        return tuple(_STAMP.sub(lambda m: m.group(1) + stamp, f.encode()).decode() for f in frames)

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
def server(mode: str, args: argparse.Namespace, redis_url: str, frames: Path) -> Iterator[Any]:
    port = free_port()
    command = [sys.executable, "-m", "bench.ws_fanout", "--serve", mode, "--port", str(port)]
    command += ["--redis-url", redis_url, "--tick", str(args.tick), "--frames", str(frames)]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=Path(__file__).parent.parent)
    try:
        if not wait_listening(port, proc, 30):
            raise RuntimeError(f"{mode} server did not start")
        yield proc, port
    finally:
        stop_process(proc)


# --- the clients ---------------------------------------------------------------------------


def session_cookie() -> str:
    from web.session import COOKIE, Session, SessionCodec

    session = Session("bench", ACCOUNT, "admin@bench.example", int(time.time()) + 3600)
    return f"{COOKIE}={SessionCodec(SECRET.encode()).encode(session)}"


class Clients:
    def __init__(self) -> None:
        self.lags: dict[int, list[float]] = {}  # tick t -> lags (ms) of every client
        self.frames: list[str] = []

    async def client(self, url: str, ready: asyncio.Event, opened: list[int]) -> None:
        import websockets

        headers = {"cookie": session_cookie()}
        async with websockets.connect(
            url,
            origin=url.replace("ws://", "http://").rsplit("/ws", 1)[0],  # type: ignore[arg-type]
            additional_headers=headers,
            max_size=None,
            compression=None,
            open_timeout=60,
        ) as ws:
            opened[0] += 1
            if opened[0] == opened[1]:
                ready.set()
            while True:
                frame = await ws.recv(decode=False)  # bytes: no UTF-8 decoding per client
                if frame.startswith(b"<"):
                    now = time.time() * 1000
                    stamp = _STAMP.search(frame)
                    assert stamp is not None
                    t = int(stamp.group(2))
                    self.lags.setdefault(t, []).append(now - t)
                    if len(self.frames) == 1:
                        self.frames.append(frame.decode())
                elif frame.startswith(b'{"type":"points"') and not self.frames:
                    self.frames.append(frame.decode())


async def measure(port: int, pid: int, n: int, args: argparse.Namespace) -> dict[str, Any]:
    clients = Clients()
    ready = asyncio.Event()
    opened = [0, n]
    url = f"ws://127.0.0.1:{port}/ws/queues"
    tasks: list[asyncio.Task[None]] = []
    for start in range(0, n, 100):  # connect in waves, as a crowd of pages would
        tasks += [
            asyncio.create_task(clients.client(url, ready, opened))
            for _ in range(start, min(n, start + 100))
        ]
        await asyncio.sleep(0.05)
    await asyncio.wait_for(ready.wait(), 120)
    connected_at = time.time() * 1000
    # Skip the tick in flight while the last clients connected.
    await asyncio.sleep(args.tick * 1.5)
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(args.tick * args.ticks)
    cpu1, wall1 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(min(2.0, args.tick))  # the last tick's stragglers
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # The ticks stamped after the last client connected (the first one skipped).
    first = connected_at + args.tick * 500
    ticks = [t for t in clients.lags if t > first]
    measured = [lag for t in ticks for lag in clients.lags[t]]
    complete = min((len(clients.lags[t]) for t in ticks), default=0)
    return {
        "p50": percentile(measured, 50) if measured else None,
        "p99": percentile(measured, 99) if measured else None,
        "max": max(measured) if measured else None,
        "samples": len(measured),
        "ticks": len(ticks),
        "min_clients_per_tick": complete,
        "cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "frames": clients.frames,
    }


async def populate(redis_url: str, args: argparse.Namespace) -> None:
    redis = runtime.connect(redis_url)
    try:
        _, tags = await populate_queues(redis, args.queues, args.pending)
        now_s = int(time.time())
        await fill_windows(redis, tags, list(range(now_s - 30, now_s + 1)))
    finally:
        await redis.aclose()


def run_round(
    mode: str, n: int, args: argparse.Namespace, url: str, frames: Path
) -> dict[str, Any]:
    with server(mode, args, url, frames) as (proc, port):
        return runtime.run(measure(port, proc.pid, n, args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="100,500,1000", help="comma-separated N")
    parser.add_argument("--queues", type=int, default=200)
    parser.add_argument("--pending", type=int, default=5, help="emails pending per queue")
    parser.add_argument("--tick", type=float, default=2.0, help="seconds between snapshots")
    parser.add_argument("--ticks", type=int, default=5, help="ticks measured per round")
    parser.add_argument("--serve", choices=["app", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--frames", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args)
        return 0
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="ws-fanout-"))
    redis_server = EmbeddedRedis(tmp)
    try:
        url = redis_server.start()
        log(f"{args.queues} queues x {args.pending} pending, windows filled")
        runtime.run(populate(url, args))
        frames_file = tmp / "frames.json"
        for n in (int(x) for x in args.clients.split(",")):
            log(f"console, {n} clients")
            console = run_round("app", n, args, url, frames_file)
            points, html = console["frames"][0], console["frames"][1]
            frames_file.write_text(json.dumps([points, html]))
            log(f"bare Starlette broadcast, {n} clients")
            bare = run_round("bare", n, args, url, frames_file)
            common = {
                "clients": n,
                "queues": args.queues,
                "tick_s": args.tick,
                "frame_bytes": len(html.encode()) + len(points.encode()),
            }
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
                **common,
            )
            for name, r in (("console", console), ("bare", bare)):
                log(
                    f"  {name}: lag p50/p99/max {r['p50']:.0f}/{r['p99']:.0f}/{r['max']:.0f} ms,"
                    f" cpu {r['cpu_pct']}%, {r['ticks']} ticks, every one to at least"
                    f" {r['min_clients_per_tick']} clients"
                )
        emit(metric="machine", **machine_fields())
    finally:
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
