"""Crashes and concurrency on real processes (issue 3): an engine SIGKILLed
mid-batch loses no email and counts none twice; two engines never deliver one
email twice.

Every engine is a `mailpulse engine` subprocess against the session's Redis,
delivering to a slow MP in the test's own event loop. The MP accepts a message
only when it answers DATA, and records each accepted copy with the EHLO name of
the engine that sent it, so every copy is traced to one engine process.

Delivery is at least once, by design: an email whose DATA the MP accepted but
whose outcome the killed engine had not yet recorded is still `requesting`, and
the next engine sends it again. What must hold is that exactly those emails are
sent twice (no more, bounded by the one batch in flight), that no email is lost,
and that every record and index counts each email once.

The kills land while an engine is sending (half-way through a batch). A kill in
the few milliseconds between recording a batch's outcomes and moving its index
entries is reproduced exactly, without a timing race, by the last test.
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
import weakref
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.records import TRANSITION_LUA

BATCH_SIZE = 100
DATA_DELAY_SECONDS = 0.02
"""How long the MP takes to answer DATA: a batch of 100 over 8 connections takes ~0.3 s."""
KILL_AFTER = 150
"""An engine is killed once the MP accepted this many of its emails: half-way through its
second batch, with DATA in flight on every connection."""
REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
[default]
max_connections = 8
new_connections_per_minute = 100000
messages_per_connection = 20
"""
"""Limits (MAILPULSE_POLICY) that stay out of the way: 8 connections, no rate limit, and
connections short enough that two engines take turns with the slots."""
MESSAGE_ID = re.compile(rb"^Message-ID: <([0-9a-f]{28})@", re.MULTILINE | re.IGNORECASE)


# --- a slow MP that traces every accepted copy to the engine that sent it ---


@dataclass(frozen=True, slots=True)
class Copy:
    email_id: str
    rcpt: str
    helo: str


@dataclass
class SlowMP:
    """An aiosmtpd MP on 127.0.0.1 whose DATA reply takes `delay` seconds."""

    delay: float = DATA_DELAY_SECONDS
    copies: list[Copy] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)  # email id -> accepted copies
    accepted_from: Counter[str] = field(default_factory=Counter)  # EHLO name -> copies
    _server: asyncio.Server | None = None
    _sessions: weakref.WeakSet[SMTP] = field(default_factory=weakref.WeakSet)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # MP latency, not synchronisation. A connection lost meanwhile (a killed
        # engine) cancels this handler: that copy was never accepted.
        await asyncio.sleep(self.delay)
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        match = MESSAGE_ID.search(content)
        email_id = match.group(1).decode() if match else "?"
        for rcpt in envelope.rcpt_tos:
            copy = Copy(email_id, rcpt, session.host_name or "?")
            self.copies.append(copy)
            self.seen[email_id] += 1
            self.accepted_from[copy.helo] += 1
        return "250 2.0.0 Ok: queued"

    async def start(self) -> SlowMP:
        def protocol() -> SMTP:
            smtp = SMTP(self, hostname="slow-mp.test", ident="slow-mp")
            self._sessions.add(smtp)
            return smtp

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(protocol, host="127.0.0.1", port=0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for smtp in list(self._sessions):
            if isinstance(smtp.transport, asyncio.Transport):
                smtp.transport.abort()
        await self._server.wait_closed()
        self._server = None

    def by_engine(self) -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = defaultdict(Counter)
        for copy in self.copies:
            found[copy.helo][copy.email_id] += 1
        return found


# --- engine subprocesses ---


@dataclass
class Engines:
    """`mailpulse engine` subprocesses, each named by its EHLO name; all killed at teardown."""

    redis_url: str
    routes: Path
    policy: Path
    data_dir: Path
    mp: SlowMP
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)

    def _policy_of(self, helo: str) -> Path:
        """Each engine sends from its own loopback IP, as engines on separate hosts do:
        connection slots are per sending IP, so neither can crowd the other out."""
        path = self.data_dir / f"{helo}.policy.toml"
        ip = f"127.0.0.{2 + len(self.procs)}"
        path.write_text(f'{self.policy.read_text()}\n[egress]\nsources = ["{ip}"]\n')
        return path

    def start(self, helo: str, lease_seconds: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPULSE_")}
        # Its Redis connections carry its name, so the test can tell when they are gone.
        separator = "&" if "?" in self.redis_url else "?"
        env |= {
            "REDIS_URL": f"{self.redis_url}{separator}client_name={helo}",
            "MAILPULSE_ROUTES": str(self.routes),
            "MAILPULSE_POLICY": str(self._policy_of(helo)),
            "MAILPULSE_DATA_DIR": str(self.data_dir),
            "MAILPULSE_LEASE_SECONDS": str(lease_seconds),
            "MAILPULSE_BATCH_SIZE": str(BATCH_SIZE),
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

    def check_alive(self) -> None:
        for helo, proc in self.procs.items():
            if helo not in self.killed and proc.poll() is not None:
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


@pytest.fixture
async def slow_mp() -> AsyncIterator[SlowMP]:
    server = await SlowMP().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def engines(redis_url: str, slow_mp: SlowMP, tmp_path: Path) -> Iterator[Engines]:
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[routes]\n"*" = "127.0.0.1:{slow_mp.port}"\n')
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    launcher = Engines(redis_url, routes, policy, tmp_path, slow_mp)
    try:
        yield launcher
    finally:
        launcher.kill_all()


# --- helpers ---


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


async def kill_mid_batch(
    engines: Engines, mp: SlowMP, redis: Redis, ids: list[str], helo: str
) -> set[str]:
    """SIGKILL `helo` half-way through its second batch; the emails it left unrecorded.

    Those are the emails still `requesting` once everything the dead process
    wrote to Redis has been applied (its connections are gone): among them, the
    ones the MP accepted from it must be sent again, and only those.
    """
    await until(
        lambda: mp.accepted_from[helo] >= KILL_AFTER, f"{helo} delivers {KILL_AFTER}", engines
    )
    engines.kill(helo)
    assert len(mp.seen) < len(ids), "every email was delivered before the kill"

    async def disconnected() -> bool:
        return all(c.get("name") != helo for c in await redis.client_list())

    await until(disconnected, f"Redis drops the connections of {helo}", engines)
    return await requesting_now(redis, ids)


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
    client: httpx.AsyncClient, sender: Any, redis: Redis, ids: list[str], tags: list[str]
) -> None:
    """Every email final `delivered` exactly once: records, API listings, indexes, queues."""
    items = await page_all(client, sender.basic)
    listed = [item["email_id"] for item in items]
    assert len(listed) == len(set(listed)) == len(ids) and set(listed) == set(ids)
    for item in items:
        assert item["status"] == "delivered", item
        # One recorded attempt: a redelivered outcome was never applied twice.
        assert item["attempts"] == 1 and len(item["delivery_log"]) == 1, item
        assert item["billable"] is True and item["mp_reply"].startswith("250 "), item
    delivered = await page_all(client, sender.basic, status="delivered")
    assert sorted(item["email_id"] for item in delivered) == sorted(ids)
    assert await page_all(client, sender.basic, status="requesting") == []
    account = sender.account
    assert set(await redis.zrange(keys.index_status(account, "delivered"), 0, -1)) == set(ids)
    assert await redis.zcard(keys.index_status(account, "requesting")) == 0
    assert await pending(redis, tags) == 0


def check_copies(
    mp: SlowMP, expected: dict[str, str], unrecorded_at_kill: dict[str, set[str]]
) -> dict[str, int]:
    """Assert what the MP got; returns, per killed engine, how many of its emails were resent.

    `unrecorded_at_kill` maps each killed engine to the emails still `requesting`
    right after it died.
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
        # are at most the one batch it had in flight.
        assert twice == sent & unrecorded, (helo, len(twice), len(sent & unrecorded))
        assert len(twice) <= BATCH_SIZE, (helo, len(twice))
        resent[helo] = len(twice)
    duplicates = sum(1 for n in mp.seen.values() if n > 1)
    assert duplicates == sum(resent.values())
    return resent


# --- the tests ---


async def test_engine_killed_mid_batch_loses_nothing_and_counts_nothing_twice(
    client, sender, redis, slow_mp, engines
):
    to = [f"user{i}@crash.example" for i in range(1000)]
    ids = await submit(client, sender.basic, to)
    tags = [keys.queue_tag(sender.api_user, "crash.example")]
    engines.start("engine-1.test", lease_seconds=2)
    unrecorded = await kill_mid_batch(engines, slow_mp, redis, ids, "engine-1.test")
    engines.start("engine-2.test", lease_seconds=2)
    await until(lambda: drained(redis, tags), "every email final", engines)
    await assert_each_delivered_once(client, sender, redis, ids, tags)
    resent = check_copies(slow_mp, dict(zip(ids, to, strict=True)), {"engine-1.test": unrecorded})
    print(f"\none kill: sent again after it {resent}; MP copies {len(slow_mp.copies)}")


async def test_repeated_kills_lose_nothing_and_count_nothing_twice(
    client, sender, redis, slow_mp, engines
):
    to = [f"user{i}@crash.example" for i in range(1000)]
    ids = await submit(client, sender.basic, to)
    tags = [keys.queue_tag(sender.api_user, "crash.example")]
    unrecorded: dict[str, set[str]] = {}
    progress = []
    # A claim takes the oldest ready emails and a dead engine's emails come back
    # newer, so each engine is killed while sending fresh mail (at about 150, 300
    # and 450 emails overall): no email is in two killed batches, none sent thrice.
    for n in (1, 2, 3):
        helo = f"engine-{n}.test"
        engines.start(helo, lease_seconds=2)
        unrecorded[helo] = await kill_mid_batch(engines, slow_mp, redis, ids, helo)
        progress.append(len(slow_mp.seen))
    engines.start("engine-4.test", lease_seconds=2)
    await until(lambda: drained(redis, tags), "every email final", engines)
    await assert_each_delivered_once(client, sender, redis, ids, tags)
    resent = check_copies(slow_mp, dict(zip(ids, to, strict=True)), unrecorded)
    print(
        f"\nthree kills at {progress} emails: sent again after each {resent};"
        f" MP copies {len(slow_mp.copies)}"
    )


async def test_two_engines_never_deliver_an_email_twice(client, sender, redis, slow_mp, engines):
    domains = [f"crash{n}.example" for n in range(4)]
    to = [f"user{i}@{domains[i % 4]}" for i in range(2000)]
    tags = [keys.queue_tag(sender.api_user, d) for d in domains]
    # Leases never run out here, so not even one email may go out twice.
    engines.start("engine-a.test", lease_seconds=60)
    engines.start("engine-b.test", lease_seconds=60)

    async def both_listening() -> bool:
        [(_, subscribers)] = await redis.pubsub_numsub(keys.WAKE_CHANNEL)
        return int(subscribers) == 2

    await until(both_listening, "both engines waiting for mail", engines)
    ids = await submit(client, sender.basic, to)
    await until(lambda: drained(redis, tags), "every email final", engines)
    await assert_each_delivered_once(client, sender, redis, ids, tags)
    check_copies(slow_mp, dict(zip(ids, to, strict=True)), {})
    assert len(slow_mp.copies) == len(ids), "an email was delivered twice"
    split = dict(slow_mp.accepted_from)
    assert set(split) == {"engine-a.test", "engine-b.test"}, split
    print(f"\ntwo engines: delivered {split}, duplicates 0")


async def test_engine_killed_between_outcome_and_index_moves_leaves_indexes_right(
    client, sender, redis, slow_mp, engines
):
    to = [f"user{i}@crash.example" for i in range(3)]
    ids = await submit(client, sender.basic, to)
    tag = keys.queue_tag(sender.api_user, "crash.example")
    # What a dead engine leaves when SIGKILL lands between the two round trips of
    # recording a delivered batch: claimed (lease run out), outcomes applied by
    # the real transition script, indexes and queue untouched.
    transition = redis.register_script(TRANSITION_LUA)
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.queue_ready(tag), *ids)
        pipe.zadd(keys.queue_lease(tag), dict.fromkeys(ids, now_ms - 1))
        await pipe.execute()
    for email_id in ids:
        fields = ["status", "delivered", "attempts", "1", "send_ms", str(now_ms)]
        fields += ["mp_reply", "250 2.0.0 Ok: queued", "billable", "1", "connected", "1"]
        assert await transition(keys=[keys.email(email_id)], args=["requesting", "0", *fields])
    engines.start("engine-1.test", lease_seconds=2)
    await until(lambda: drained(redis, [tag]), "the expired leases handled", engines)
    assert slow_mp.copies == []  # recorded as delivered: never sent again
    delivered = await page_all(client, sender.basic, status="delivered")
    assert sorted(item["email_id"] for item in delivered) == sorted(ids)
    assert await redis.zcard(keys.index_status(sender.account, "requesting")) == 0
