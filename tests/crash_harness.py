"""Engines as real processes that can be SIGKILLed, and an MP that traces every copy.

Shared by the crash tests (tests/e2e/test_crash.py), the soak
(tests/reliability, bench/soak.py) and the Redis restart test: each engine is a
`mailpulse engine` subprocess named by its EHLO name and sending from its own
loopback IP, and the MP records each accepted copy with the EHLO name of the
engine that sent it and when, so every copy is traced to one engine process.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from app.simulator import MPServer, Profile, Received
from queue_engine import keys

REPO_ROOT = Path(__file__).resolve().parents[1]
MESSAGE_ID = re.compile(rb"^Message-ID: <([0-9a-f]{28})@", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Copy:
    email_id: str
    rcpt: str
    helo: str
    at: float
    """When the MP accepted it (time.monotonic), just before answering 250."""


@dataclass
class TracingMP:
    """The simulator's plain MP (it accepts everything; answering the message takes
    `delay` s), with each accepted copy traced to the engine that sent it."""

    delay: float = 0.0
    copies: list[Copy] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)  # email id -> accepted copies
    accepted_from: Counter[str] = field(default_factory=Counter)  # EHLO name -> copies
    _server: MPServer | None = None

    def _trace(self, accepted: Received) -> None:
        # A connection lost during the delay (a killed engine) accepts nothing.
        match = MESSAGE_ID.search(accepted.data)
        email_id = match.group(1).decode() if match else "?"
        copy = Copy(email_id, accepted.rcpt_to, accepted.helo or "?", accepted.at)
        self.copies.append(copy)
        self.seen[email_id] += 1
        self.accepted_from[copy.helo] += 1

    async def start(self) -> TracingMP:
        profile = Profile(name="tracing-mp", data_delay=self.delay)
        server = MPServer(keep_messages=False, profile=profile, on_accept=self._trace)
        self._server = await server.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    def by_engine(self) -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = defaultdict(Counter)
        for copy in self.copies:
            found[copy.helo][copy.email_id] += 1
        return found


@dataclass
class Engines:
    """`mailpulse engine` subprocesses, each named by its EHLO name; all killed at teardown."""

    redis_url: str
    routes: Path
    policy: Path
    data_dir: Path
    mp: TracingMP
    batch_size: int = 100
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)

    @classmethod
    def to(
        cls, mp: TracingMP, redis_url: str, data_dir: Path, policy: str, batch_size: int = 100
    ) -> Engines:
        """Engines that route every domain to `mp`, with `policy` (a policy TOML's text)."""
        routes = data_dir / "routes.toml"
        routes.write_text(f'[routes]\n"*" = "127.0.0.1:{mp.port}"\n')
        policy_file = data_dir / "policy.toml"
        policy_file.write_text(policy)
        return cls(redis_url, routes, policy_file, data_dir, mp, batch_size)

    def _policy_of(self, helo: str) -> Path:
        """Each engine sends from its own loopback IP, as engines on separate hosts do:
        connection slots are per sending IP, so neither can crowd the other out, and
        the sending IP a record shows names the engine that recorded it."""
        path = self.data_dir / f"{helo}.policy.toml"
        ip = f"127.0.0.{2 + len(self.procs)}"
        self.ips[helo] = ip
        path.write_text(f'{self.policy.read_text()}\n[egress]\nsources = ["{ip}"]\n')
        return path

    def start(self, helo: str, lease_seconds: float, redis_url: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPULSE_")}
        url = redis_url or self.redis_url
        # Its Redis connections carry its name, so a test can tell when they are gone.
        separator = "&" if "?" in url else "?"
        env |= {
            "REDIS_URL": f"{url}{separator}client_name={helo}",
            "MAILPULSE_ROUTES": str(self.routes),
            "MAILPULSE_POLICY": str(self._policy_of(helo)),
            "MAILPULSE_DATA_DIR": str(self.data_dir),
            "MAILPULSE_LEASE_SECONDS": str(lease_seconds),
            "MAILPULSE_BATCH_SIZE": str(self.batch_size),
            "MAILPULSE_RETRY_BASE_SECONDS": "0.2",
            "MAILPULSE_HELO_NAME": helo,
        }
        with (self.data_dir / f"{helo}.log").open("wb") as log:
            self.procs[helo] = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "engine"],
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self, helo: str) -> None:
        """SIGKILL: no cleanup runs, as when the OOM killer or a power cut ends the worker."""
        proc = self.procs[helo]
        assert proc.poll() is None, f"{helo} exited before the kill:\n{self.logs()}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        self.killed.add(helo)

    @property
    def alive(self) -> list[str]:
        return [helo for helo in self.procs if helo not in self.killed]

    def check_alive(self) -> None:
        for helo in self.alive:
            proc = self.procs[helo]
            if proc.poll() is not None:
                raise AssertionError(f"engine {helo} exited ({proc.returncode}):\n{self.logs()}")

    def logs(self) -> str:
        parts = [f"MP accepted, per engine: {dict(self.mp.accepted_from)}"]
        for helo in self.procs:
            text = (self.data_dir / f"{helo}.log").read_text(errors="replace")
            parts.append(f"--- {helo} ---\n{text[-3000:]}")
        return "\n".join(parts)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


async def until(check: Callable[[], Any], what: str, engines: Engines, within: float = 20.0) -> Any:
    """Poll check() (sync or async) until truthy; fail at the deadline or if an engine died."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        engines.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s (last {value!r})\n{engines.logs()}")
        await asyncio.sleep(0.01)


async def disconnected(redis: Redis, helo: str) -> bool:
    """Redis dropped every connection of a dead engine: all it wrote has been applied."""
    return all(c.get("name") != helo for c in await redis.client_list())


async def submit(client: httpx.AsyncClient, auth: dict[str, str], to: list[str]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(to), 1000):
        body = {"from": "shop@acme.example", "to": to[start : start + 1000], "subject": "s"}
        response = await client.post("/v1/mail/send", json=body | {"text": "t"}, headers=auth)
        assert response.status_code == 202, response.text
        ids += response.json()["email_ids"]
    assert len(set(ids)) == len(to)
    return ids


async def pending(redis: Redis, tags: list[str]) -> int:
    async with redis.pipeline(transaction=False) as pipe:
        for tag in tags:
            pipe.zcard(keys.queue_ready(tag))
            pipe.zcard(keys.queue_lease(tag))
        return sum(await pipe.execute())


async def drained(redis: Redis, tags: list[str]) -> bool:
    """Nothing ready or leased: every outcome is recorded (an email is acked only after)."""
    return await pending(redis, tags) == 0


async def requesting_now(redis: Redis, ids: list[str]) -> set[str]:
    """Emails whose outcome is not recorded (yet)."""
    async with redis.pipeline(transaction=False) as pipe:
        for email_id in ids:
            pipe.hget(keys.email(email_id), "status")
        statuses = await pipe.execute()
    return {e for e, s in zip(ids, statuses, strict=True) if s == "requesting"}


async def page_all(
    client: httpx.AsyncClient, auth: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "1000", **params} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/v1/emails", params=query, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def assert_each_delivered_once(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    account: str,
    redis: Redis,
    ids: list[str],
    tags: list[str],
) -> list[dict[str, Any]]:
    """Every email final `delivered` exactly once: records, API listings, indexes, queues.

    Returns the listed items (the API's view of every record)."""
    items = await page_all(client, auth)
    listed = [item["email_id"] for item in items]
    assert len(listed) == len(set(listed)) == len(ids) and set(listed) == set(ids)
    for item in items:
        assert item["status"] == "delivered", item
        # One recorded attempt: a redelivered outcome was never applied twice.
        assert item["attempts"] == 1 and len(item["delivery_log"]) == 1, item
        assert item["billable"] is True and item["mp_reply"].startswith("250 "), item
    delivered = await page_all(client, auth, status="delivered")
    assert sorted(item["email_id"] for item in delivered) == sorted(ids)
    assert await page_all(client, auth, status="requesting") == []
    assert set(await redis.zrange(keys.index_status(account, "delivered"), 0, -1)) == set(ids)
    assert await redis.zcard(keys.index_status(account, "requesting")) == 0
    assert await pending(redis, tags) == 0
    return items


def check_copies(
    mp: TracingMP,
    expected: dict[str, str],
    unrecorded_at_kill: dict[str, set[str]],
    most_in_flight: int = 100,
) -> dict[str, int]:
    """Assert what the MP got; returns, per killed engine, how many of its emails were resent.

    `unrecorded_at_kill` maps each killed engine to the emails whose outcome it
    had not recorded when it died; `most_in_flight` bounds what an engine has in
    flight (one batch per queue it drains at once).
    """
    # Each copy carries its own recipient's Message-ID: nothing was crossed.
    for copy in mp.copies:
        assert expected.get(copy.email_id) == copy.rcpt, copy
    assert set(mp.seen) == set(expected), "an email never reached the MP"
    assert max(mp.seen.values()) <= 2, mp.seen.most_common(3)
    by_engine = mp.by_engine()
    for helo, sent in by_engine.items():
        assert max(sent.values()) == 1, f"{helo} sent one email twice: {sent.most_common(3)}"
    resent: dict[str, int] = {}
    for helo, unrecorded in unrecorded_at_kill.items():
        sent = set(by_engine.get(helo, ()))
        twice = {e for e in sent if mp.seen[e] == 2}
        # Exactly the emails it sent but did not record went out again, and they
        # are at most what it had in flight.
        assert twice == sent & unrecorded, (helo, len(twice), len(sent & unrecorded))
        assert len(twice) <= most_in_flight, (helo, len(twice))
        resent[helo] = len(twice)
    duplicates = sum(1 for n in mp.seen.values() if n > 1)
    assert duplicates == sum(resent.values())
    return resent
