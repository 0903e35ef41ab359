"""Embedded redis-server: real processes, no mocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from app.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_redis_server
from app.process import pid_alive, process_cmdline

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def ping(url: str) -> bool:
    with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
        return bool(client.ping())


def state(data_dir: Path) -> dict[str, object]:
    result: dict[str, object] = json.loads((data_dir / "redis" / "embedded.json").read_text())
    return result


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_data_survives_restart(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    url = first.start()
    pid = first.pid
    assert first.owned and pid is not None
    assert url == f"unix://{tmp_path.absolute()}/redis/redis.sock"
    assert state(tmp_path) == {"pid": pid, "url": url, "owner_pid": os.getpid()}
    with redis.Redis.from_url(url) as client:
        assert client.ping()
        client.set("greeting", "hello")
    first.stop()
    assert not pid_alive(pid)
    assert not (tmp_path / "redis" / "embedded.json").exists()
    assert (tmp_path / "redis" / "appendonly.aof").exists()

    with EmbeddedRedis(tmp_path) as second, redis.Redis.from_url(second.url) as client:
        assert second.owned and second.pid != pid
        assert client.get("greeting") == b"hello"


def test_second_instance_reuses_running_server(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        other = EmbeddedRedis(tmp_path)
        assert other.start() == first.url
        assert not other.owned
        assert other.pid == first.pid
        other.stop()
        assert first.pid is not None and pid_alive(first.pid)
        assert ping(first.url)
        assert state(tmp_path)["pid"] == first.pid


def test_stale_state_with_dead_pid_starts_fresh(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    stale = {"pid": dead_pid(), "url": "redis://127.0.0.1:1/0", "owner_pid": dead_pid()}
    (tmp_path / "redis" / "embedded.json").write_text(json.dumps(stale))
    with EmbeddedRedis(tmp_path) as server:
        assert server.owned and server.pid != stale["pid"]
        assert ping(server.url)
        assert state(tmp_path)["pid"] == server.pid


def test_state_naming_a_non_redis_process_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    stale = {"pid": os.getpid(), "url": "redis://127.0.0.1:1/0", "owner_pid": os.getpid()}
    (tmp_path / "redis" / "embedded.json").write_text(json.dumps(stale))
    with EmbeddedRedis(tmp_path) as server:
        assert server.owned and server.pid != os.getpid()
        assert ping(server.url)


def test_hung_server_is_replaced(tmp_path: Path) -> None:
    hung = EmbeddedRedis(tmp_path)
    hung.start()
    assert hung.pid is not None
    os.kill(hung.pid, signal.SIGSTOP)  # alive, still redis-server, but no PING answer
    try:
        with EmbeddedRedis(tmp_path) as fresh:
            assert fresh.owned and fresh.pid != hung.pid
            assert not pid_alive(hung.pid)
            assert ping(fresh.url)
    finally:
        if pid_alive(hung.pid):
            os.kill(hung.pid, signal.SIGCONT)
        hung.stop()


def test_long_data_dir_falls_back_to_tcp(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 120)
    with EmbeddedRedis(data_dir) as server:
        assert server.url.startswith("redis://127.0.0.1:")
        assert ping(server.url)


def test_server_dies_with_sigkilled_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from app.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis(Path(sys.argv[1]))
        server.start()
        print(server.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    redis_pid = 0
    try:
        assert parent.stdout is not None
        redis_pid = int(parent.stdout.readline())
        assert any("redis-server" in part for part in process_cmdline(redis_pid))
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not pid_alive(redis_pid)), "redis-server outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if redis_pid and pid_alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)


def test_concurrent_starts_share_one_server(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from app.embedded_redis import EmbeddedRedis
        with EmbeddedRedis(Path(sys.argv[1])) as server:
            print(server.pid, server.owned, flush=True)
            sys.stdin.read()
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        lines = [p.stdout.readline().split() for p in procs if p.stdout is not None]
        assert len({pid for pid, _ in lines}) == 1
        assert sorted(owned for _, owned in lines) == ["False", "False", "True"]
    finally:
        for p in procs:
            p.communicate(timeout=30)
    assert not pid_alive(int(lines[0][0]))


def test_bad_explicit_binary_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="MAILPULSE_REDIS_SERVER"):
        find_redis_server(str(tmp_path / "missing-redis-server"))
    not_executable = tmp_path / "redis-server"
    not_executable.write_text("")
    with pytest.raises(EmbeddedRedisError, match="MAILPULSE_REDIS_SERVER"):
        find_redis_server(str(not_executable))
    found = find_redis_server(None)
    assert os.access(found, os.X_OK)
