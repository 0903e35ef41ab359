"""`mailpulse run` restarts the embedded Redis it started (issue 10, point 2).

The real process tree (supervisor, web, engine, inbound, redis-server) delivers
to an MP in the test while a sender posts through the web port; redis-server
gets SIGKILL, and nobody but the supervisor starts it again. The web and the
engine, untouched, answer and deliver again, and every email of a 202, before
the kill or after, is delivered. Also with a data dir whose path is too long
for a unix socket inside it: the restarted server is at the same address.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import eventually
from crash_harness import TracingMP
from processes import (
    System,
    direct_children,
    embedded_state,
    redis_servers_in,
    running,
    snapshot,
    still_running,
    wait_gone,
)
from traffic import Traffic

from app.process import pid_alive
from app.runtime import connect
from queue_engine import keys
from queue_engine.accounts import EmailType, create_account, create_api_user

DOMAINS = ["gmail.example", "outlook.example"]
T = TypeVar("T")


def redis_state(system: System) -> dict[str, Any]:
    state = embedded_state(system.data_dir)
    assert state is not None, f"no embedded Redis in {system.data_dir}"
    return state


async def up(
    system: System, what: str, check: Callable[[], Awaitable[T]], within: float = 30.0
) -> T:
    """Poll `check` while the supervisor lives; its stderr in the failure."""

    async def alive_and_checked() -> T:
        assert system.proc.poll() is None, f"supervisor exited: {system.stderr_tail()}"
        return await check()

    try:
        return await eventually(alive_and_checked, within)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}\nstderr: {system.stderr_tail()}") from None


@pytest.mark.parametrize("data_dir_bytes", [0, 110], ids=["data-dir", "110-byte-data-dir"])
async def test_run_restarts_its_killed_redis_and_loses_no_mail(
    tmp_path: Path, tracing_mp: TracingMP, data_dir_bytes: int
) -> None:
    data_dir = tmp_path / "data"
    if data_dir_bytes:
        data_dir = tmp_path / ("d" * max(1, data_dir_bytes - len(os.fsencode(tmp_path)) - 1))
        assert len(os.fsencode(data_dir)) >= data_dir_bytes
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[routes]\n"*" = "127.0.0.1:{tracing_mp.port}"\n')
    settings = {
        "MAILPULSE_ROUTES": str(routes),
        # A write lost with Redis leaves its emails leased: they come back after this.
        "MAILPULSE_LEASE_SECONDS": "5",
        "MAILPULSE_RETRY_BASE_SECONDS": "1",
    }
    with running(tmp_path, data_dir=data_dir, **settings) as system:
        # Blocking waits: in a thread, so the MP on this loop keeps answering.
        await asyncio.to_thread(system.wait_line, "mailpulse is running")
        await asyncio.to_thread(system.wait_healthy)
        first = redis_state(system)
        url, killed = str(first["url"]), int(first["pid"])
        assert url.startswith("unix://")
        if data_dir_bytes:
            assert url.startswith(f"unix:///tmp/mailpulse-{os.getuid()}/"), url

        redis = connect(url)
        await create_account(redis, "acme", "admin@acme.example")
        api_user = await create_api_user(redis, "acme", "acme-tx", EmailType.TRANSACTIONAL)
        await redis.aclose()
        basic = base64.b64encode(f"acme-tx:{api_user.api_key}".encode()).decode()
        async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
            traffic = Traffic(client, {"authorization": f"Basic {basic}"}, DOMAINS)
            sending = asyncio.create_task(traffic.run())
            try:

                async def delivered(n: int) -> bool:
                    return len(tracing_mp.seen) >= n

                await up(system, "200 delivered", lambda: delivered(200))

                children = direct_children(system.proc.pid).items()
                parts = snapshot({p: c for p, c in children if "app.cli" in c})
                assert len(parts) == 3, parts  # web, engine, inbound
                os.kill(killed, signal.SIGKILL)  # no shutdown, no last AOF write
                killed_at, acknowledged = time.monotonic(), len(traffic.acknowledged)

                async def restarted() -> int | None:
                    pid = redis_state(system).get("pid")
                    return pid if isinstance(pid, int) and pid != killed else None

                pid = await up(system, "a new redis-server", restarted)
                back_at = time.monotonic()
                assert redis_state(system)["url"] == url  # where the parts look
                assert pid in direct_children(system.proc.pid), "not the supervisor's child"

                async def sends_again() -> bool:
                    return len(traffic.acknowledged) >= acknowledged + 200

                await up(system, "202s after the restart", sends_again)
                web_back = time.monotonic() - back_at
                # They reconnected by themselves: not one was restarted.
                assert len(still_running(parts)) == 3, (parts, system.stderr_tail())
            finally:
                traffic.stopped = True
                await asyncio.wait_for(sending, 30)

        ids = traffic.acknowledged
        assert len(set(ids)) == len(ids)

        async def all_delivered() -> bool:
            return set(ids) <= set(tracing_mp.seen)

        await up(system, "every acknowledged email at the MP", all_delivered, 60)
        redis = connect(url)
        try:

            async def all_final() -> bool:
                return await redis.zcard(keys.index_status("acme", "requesting")) == 0

            await up(system, "every acknowledged email final", all_final)
            async with redis.pipeline(transaction=False) as pipe:
                for email_id in ids:
                    pipe.hget(keys.email(email_id), "status")
                statuses = Counter(await pipe.execute())
        finally:
            await redis.aclose()
        assert statuses == Counter(delivered=len(ids)), statuses
        assert set(traffic.answers) <= {202, 503}, traffic.answers
        assert set(traffic.errors) <= {"storage_unavailable"}, traffic.errors
        log = system.stderr_tail(200)
        assert f"embedded redis-server (pid {killed}) exited with -9; restarting" in log, log
        assert f"embedded redis-server running again (pid {pid}) at {url}" in log, log

        # Ctrl-C stops the restarted server too: it is the supervisor's own.
        before = snapshot(direct_children(system.proc.pid))
        system.proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(system.proc.wait, 15)  # the MP answers the QUITs
        assert code == 0, system.stderr_tail()
        wait_gone(before, 10, "the tree after SIGINT")
        assert redis_servers_in(system.data_dir / "redis") == []
        assert not pid_alive(pid)
        print(
            f"\nrun, redis killed: {len(ids)} acknowledged, all delivered; answers"
            f" {dict(traffic.answers)}; redis back after {back_at - killed_at:.2f}s,"
            f" 200 more 202s {web_back:.2f}s later"
        )
