"""`mailpulse run`: one process tree of web, engine and inbound (plus the demo parts).

The supervisor owns the embedded Redis and starts each part as its own
process, so the web and the engine use both cores. Every child dies with the
supervisor (PDEATHSIG), even when it is SIGKILLed, and a part that crashes is
restarted with a growing delay; so is the embedded Redis, if this supervisor
started it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from app import runtime
from app.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from app.process import die_with_parent
from app.settings import Settings

STOP_GRACE_SECONDS = 10.0
DEMO_RETURN_PATH_DOMAIN = "bounces.mailpulse.localhost"
RESTART_DELAY_MAX = 30.0
STABLE_SECONDS = 60.0
ROUTES_WAIT_SECONDS = 30.0


@dataclass(slots=True)
class Backoff:
    """When to start a dead process again: after 0.5 s, doubling up to RESTART_DELAY_MAX,
    and after 0.5 s again once it has run for STABLE_SECONDS."""

    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    def running(self, now: float) -> None:
        if now - self.started_at > STABLE_SECONDS:
            self.restarts = 0

    def failed(self, now: float) -> float:
        delay = min(RESTART_DELAY_MAX, 0.5 * 2.0**self.restarts)
        self.restarts += 1
        self.next_start = now + delay
        return delay


@dataclass(slots=True)
class Part:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    backoff: Backoff = field(default_factory=Backoff)
    env: dict[str, str] | None = None  # this part's own environment, if not the shared one

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *self.argv],
            env=self.env if self.env is not None else env,
            preexec_fn=die_with_parent,
            stdin=subprocess.DEVNULL,
        )
        self.backoff.started_at = time.monotonic()


@dataclass(slots=True)
class RedisWatch:
    """The embedded Redis this supervisor started, started again when it dies.

    On the same data dir (its AOF holds every write it acknowledged) and at the
    same address, so the parts, which were given the URL once, reconnect by
    themselves. Called from the main thread, which PDEATHSIG ties the server to.
    """

    server: EmbeddedRedis
    backoff: Backoff = field(default_factory=Backoff)
    down: bool = False

    def check(self, now: float) -> None:
        if not self.down:
            why = self.server.exited()
            if why is None:
                self.backoff.running(now)
                return
            self.down, delay = True, self.backoff.failed(now)
            server = f"embedded redis-server (pid {self.server.pid})"
            where = f"on {self.server.dir} at {self.server.address}"
            _log(f"{server} {why}; restarting in {delay:.1f}s {where}")
        elif now >= self.backoff.next_start:
            try:
                self.server.restart()
            except EmbeddedRedisError as exc:
                delay = self.backoff.failed(time.monotonic())
                _log(f"embedded redis-server did not start again: {exc}\nretrying in {delay:.1f}s")
                return
            self.down, self.backoff.started_at = False, time.monotonic()
            _log(
                f"embedded redis-server running again (pid {self.server.pid}) at {self.server.url}"
            )


def supervise(settings: Settings, *, demo: bool) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with runtime.redis_server(settings) as (url, embedded):
        # Not a Redis adopted from another process: that process restarts its own.
        redis = RedisWatch(embedded) if embedded is not None and embedded.owned else None
        env = {**os.environ, "REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
        base_url = f"http://{settings.http_host}:{settings.http_port}"
        parts = [Part("web", ["web"]), Part("engine", ["engine"]), Part("inbound", ["inbound"])]
        creds: dict[str, str] = {}
        routes: Path | None = None
        if demo:
            creds = asyncio.run(_demo_account(settings, url))
            # The simulator bounces and reports to the inbound server, at VERP
            # addresses of a return-path domain that server accepts.
            env.setdefault("MAILPULSE_RETURN_PATH_DOMAIN", DEMO_RETURN_PATH_DOMAIN)
            inbound = f"{settings.smtp_host}:{settings.smtp_port}"
            simulator, routes = _start_simulator(settings.data_dir, env, inbound)
            parts = [simulator, *parts, Part("demo", ["demo-traffic", "--url", base_url])]
            try:
                ready = _wait_for_routes(simulator, routes, stop)
            except BaseException:
                _stop_all(parts)
                raise
            if not ready:
                _stop_all(parts)
                return 0 if stop.is_set() else 1
            env["MAILPULSE_ROUTES"] = str(routes)
        for part in parts:
            if part.proc is None:
                part.start(env)
        _banner(settings, base_url, url, creds, routes)
        try:
            _watch(parts, env, stop, redis)
        finally:
            _stop_all(parts)
    return 0


async def _demo_account(settings: Settings, url: str) -> dict[str, str]:
    from app.demo import ensure_demo_account

    redis = runtime.connect(url)
    try:
        return await ensure_demo_account(redis, settings.data_dir)
    finally:
        await redis.aclose()


def _start_simulator(data_dir: Path, env: dict[str, str], inbound: str) -> tuple[Part, Path]:
    """The simulator on free ports; it writes the demo routes once every profile listens.

    Those routes send each profile's domains to its MP and every other domain ("*")
    to the accepting one, so demo mail can never leave this machine. A restarted
    simulator takes back the ports of the file, which the engine read at start-up.
    """
    routes = data_dir / "demo-routes.toml"
    routes.unlink(missing_ok=True)  # from an earlier run: its ports are long gone
    own_env = {k: v for k, v in env.items() if k != "MAILPULSE_ROUTES"}  # not written yet
    argv = ["simulate", "--port", "0", "--routes-file", str(routes), "--inbound", inbound]
    part = Part("simulate", argv, env=own_env)
    part.start(env)
    return part, routes


def _wait_for_routes(
    simulator: Part, routes: Path, stop: threading.Event, timeout: float = ROUTES_WAIT_SECONDS
) -> bool:
    """Whether the simulator wrote its routes file (the engine reads it once, at start-up)."""
    deadline = time.monotonic() + timeout
    while not routes.exists():
        assert simulator.proc is not None
        code = simulator.proc.poll()
        if code is not None:
            _log(f"simulate exited with {code} before writing {routes}")
            return False
        if time.monotonic() > deadline:
            _log(f"simulate did not write {routes} within {timeout:.0f}s")
            return False
        if stop.wait(0.05):
            return False
    return True


def _banner(
    settings: Settings, base_url: str, url: str, creds: dict[str, str], routes: Path | None
) -> None:
    lines = [
        "",
        f"mailpulse is running: {base_url}/  (console; API, health at {base_url}/healthz)",
        f"  redis: {url}   inbound SMTP: {settings.smtp_host}:{settings.smtp_port}",
    ]
    if creds:
        lines += [
            f"  demo login: {creds['email']} / {creds['password']}",
            f"  demo API_USER: {creds['api_user']}:{creds['api_key']}",
            "  try:",
            f"    curl -u {creds['api_user']}:{creds['api_key']} {base_url}/v1/mail/send \\",
            "      -H 'content-type: application/json' \\",
            '      -d \'{"from": "shop@shop.mailpulse.example", "to": ["you@gmail.example"],'
            ' "subject": "Hi", "text": "Hello"}\'',
            f"    curl -u {creds['api_user']}:{creds['api_key']} '{base_url}/v1/emails?limit=5'",
            f"  (credentials kept in {settings.data_dir / 'demo.json'})",
        ]
    if routes is not None:
        lines.append(f"  MP simulator on 127.0.0.1, demo domains routed by {routes}")
    lines.append("Ctrl-C stops everything.\n")
    print("\n".join(lines), flush=True)


def _watch(
    parts: list[Part], env: dict[str, str], stop: threading.Event, redis: RedisWatch | None
) -> None:
    while not stop.wait(0.2):
        now = time.monotonic()
        if redis is not None:
            redis.check(now)
        for part in parts:
            if part.proc is None:
                if now >= part.backoff.next_start:
                    part.start(env)
                continue
            code = part.proc.poll()
            if code is None:
                part.backoff.running(now)
                continue
            part.proc, delay = None, part.backoff.failed(now)
            _log(f"{part.name} exited with {code}; restarting in {delay:.1f}s")


def _log(message: str) -> None:
    print(f"mailpulse: {message}", file=sys.stderr, flush=True)


def _stop_all(parts: list[Part]) -> None:
    running = [p.proc for p in parts if p.proc is not None and p.proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
