"""The supervisor's watch on its embedded Redis, driven step by step with a real redis-server.

`check(now)` is called with chosen clock values, so the backoff is tested without
waiting for it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from app.embedded_redis import EmbeddedRedis
from app.supervisor import RedisWatch


def test_a_dead_redis_is_restarted_with_backoff_until_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = EmbeddedRedis(tmp_path)
    watch = RedisWatch(server)
    try:
        url = server.start()
        with redis.Redis.from_url(url) as client:
            client.set("kept", "yes")
        watch.check(time.monotonic())
        assert not watch.down  # running: nothing to do

        killed = server.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        os.waitid(os.P_PID, killed, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped
        now = time.monotonic()
        watch.check(now)
        assert watch.down
        assert capsys.readouterr().err == (
            f"mailpulse: embedded redis-server (pid {killed}) exited with -9; restarting in"
            f" 0.5s on {server.dir} at {url}\n"
        )
        watch.check(now + 0.4)
        assert server.exited() is not None  # not before its delay

        # A server that cannot start (an AOF it refuses) is retried later, not given up.
        aof = tmp_path / "redis" / "appendonly.aof"
        size = aof.stat().st_size
        with open(aof, "ab") as f:
            f.write(b"not a command\r\n")
        watch.check(now + 0.6)
        err = capsys.readouterr().err
        assert err.startswith("mailpulse: embedded redis-server did not start again:"), err
        assert "Bad file format" in err and err.endswith("retrying in 1.0s\n"), err
        assert watch.down and server.exited() is not None

        os.truncate(aof, size)
        watch.check(time.monotonic() + 1.1)
        assert not watch.down
        assert server.owned and server.url == url and server.pid not in (None, killed)
        assert capsys.readouterr().err == (
            f"mailpulse: embedded redis-server running again (pid {server.pid}) at {url}\n"
        )
        with redis.Redis.from_url(url) as client:
            assert client.get("kept") == b"yes"
    finally:
        server.stop()
