"""Embedded redis-server: real processes, no mocks."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from app.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    find_redis_server,
    make_private_dir,
    socket_path,
)
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


def test_a_server_loading_a_large_aof_is_waited_for_not_killed(tmp_path: Path) -> None:
    """Redis answers LOADING while it reads its AOF back, for seconds to minutes with a
    large dataset: start() must wait for it (it was killed after the start timeout,
    and the supervisor would have killed every restart of a big dataset the same way)."""
    aof = tmp_path / "redis" / "appendonly.aof"
    aof.parent.mkdir(parents=True)
    n = 600_000
    with open(aof, "wb") as f:
        for first in range(0, n, 10_000):
            f.write(
                b"".join(
                    b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$5\r\nvalue\r\n" % (len(k), k)
                    for k in (b"key:%d" % i for i in range(first, first + 10_000))
                )
            )
    server = EmbeddedRedis(tmp_path)
    started = time.monotonic()
    server.start(timeout=0.1)  # far shorter than the load
    try:
        assert time.monotonic() - started > 0.1  # it did have to wait for the load
        with redis.Redis.from_url(server.url) as client:
            assert client.dbsize() == n
    finally:
        server.stop()


def long_dir(tmp_path: Path, name: str = "d") -> Path:
    """A data dir whose own socket path would not fit in sun_path (108 bytes)."""
    data_dir = tmp_path / (name * max(1, 110 - len(os.fsencode(tmp_path))))
    assert len(os.fsencode(data_dir)) >= 110
    return data_dir


def test_short_data_dir_keeps_its_socket_inside(tmp_path: Path) -> None:
    assert socket_path(tmp_path / "redis") == tmp_path / "redis" / "redis.sock"


def test_long_data_dir_gets_a_short_socket_named_by_its_path(tmp_path: Path) -> None:
    first, second = long_dir(tmp_path, "a"), long_dir(tmp_path, "b")
    path = socket_path(first / "redis")
    assert path.parent == Path("/tmp") / f"mailpulse-{os.getuid()}"
    assert len(os.fsencode(path)) < 100
    assert socket_path(first / "redis") == path  # the same on every start
    assert socket_path(second / "redis") != path
    link = long_dir(tmp_path, "l")
    link.symlink_to(first)
    assert socket_path(link / "redis") == path  # one data dir, one socket
    assert socket_path(first / "redis", tmp_path).parent == tmp_path / f"mailpulse-{os.getuid()}"


def test_the_short_socket_directory_must_be_private(tmp_path: Path) -> None:
    made = tmp_path / "made"
    make_private_dir(made)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    make_private_dir(made)  # already there, ours, private: fine

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to(made)
    a_file = tmp_path / "file"
    a_file.write_text("")
    for path in (shared, link, a_file):
        with pytest.raises(EmbeddedRedisError, match=r"mode 700.*MAILPULSE_DATA_DIR"):
            make_private_dir(path)
    with pytest.raises(EmbeddedRedisError, match="MAILPULSE_DATA_DIR"):
        make_private_dir(tmp_path / "missing" / "dir")


def test_long_data_dir_listens_on_the_short_socket_only(tmp_path: Path) -> None:
    with EmbeddedRedis(long_dir(tmp_path)) as server, redis.Redis.from_url(server.url) as client:
        assert server.url == server.address == f"unix://{server.socket}"
        assert len(os.fsencode(server.socket)) < 100
        assert stat.S_IMODE(server.socket.parent.stat().st_mode) == 0o700
        assert client.config_get("port") == {"port": "0"}  # no TCP port for other users


def test_a_killed_server_restarts_at_the_same_address(tmp_path: Path) -> None:
    data_dir = long_dir(tmp_path)
    with EmbeddedRedis(data_dir) as server:
        url, pid = server.url, server.pid
        with pytest.raises(EmbeddedRedisError, match="still running"):
            server.restart()
        with redis.Redis.from_url(url) as client:
            client.set("before", "kill")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: server.exited() == "exited with -9")

        assert server.restart() == url
        assert server.owned and server.pid != pid and server.exited() is None
        assert state(data_dir)["pid"] == server.pid
        with redis.Redis.from_url(url) as client:
            assert client.get("before") == b"kill"  # appendfsync always: on disk before the reply


def test_adopting_a_long_data_dir_server_shares_its_socket(tmp_path: Path) -> None:
    with EmbeddedRedis(long_dir(tmp_path)) as first:
        other = EmbeddedRedis(long_dir(tmp_path))
        assert other.start() == first.url == other.address
        assert not other.owned and other.pid == first.pid
        other.stop()
        assert ping(first.url)


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
