"""Helpers for tests that drive mailpulse as real subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from app.process import pid_alive, process_cmdline

ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], T], timeout: float, what: str) -> T:
    """Poll check() until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last value {value!r})")
        time.sleep(0.05)


def cmdline(pid: int) -> str:
    return " ".join(process_cmdline(pid))


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat from `state` (field 3) on; None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw.rsplit(b")", 1)[1].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22: starttime


def descendants(root: int) -> dict[int, str]:
    """Live descendants of `root` (zombies excluded) → their command lines."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children[int(fields[1])].append(int(entry))
    found: dict[int, str] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if pid_alive(child):
                found[child] = cmdline(child)
            stack.append(child)
    return found


def direct_children(root: int) -> dict[int, str]:
    return {
        pid: cmd
        for pid, cmd in descendants(root).items()
        if (fields := _stat_fields(pid)) and int(fields[1]) == root
    }


def embedded_state(data_dir: Path) -> dict[str, Any] | None:
    """The data dir's embedded.json: the running embedded Redis's pid and URL."""
    path = data_dir / "redis" / "embedded.json"
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def redis_servers_in(redis_dir: Path) -> list[int]:
    """Live redis-server processes whose working directory is `redis_dir`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if "redis-server" not in cmdline(pid) or not pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            if Path(os.readlink(f"/proc/{pid}/cwd")) == redis_dir.resolve():
                found.append(pid)
    return found


def snapshot(pids: dict[int, str]) -> dict[int, tuple[str, int | None]]:
    """pid → (cmdline, start time): a recycled pid has another start time."""
    return {pid: (cmd, start_time(pid)) for pid, cmd in pids.items()}


def still_running(snap: dict[int, tuple[str, int | None]]) -> dict[int, str]:
    return {
        pid: cmd
        for pid, (cmd, started) in snap.items()
        if pid_alive(pid) and start_time(pid) == started
    }


def wait_gone(snap: dict[int, tuple[str, int | None]], timeout: float, why: str) -> None:
    """Every process of `snap` exits within `timeout`; else fail listing the survivors."""
    deadline = time.monotonic() + timeout
    while left := still_running(snap):
        if time.monotonic() >= deadline:
            raise AssertionError(f"{why}: still running after {timeout}s: {left}")
        time.sleep(0.05)


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This environment without any mailpulse setting, then a data dir, free ports, `extra`."""
    env = {
        k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("MAILPULSE_")
    }
    env.update(
        MAILPULSE_DATA_DIR=str(data_dir),
        MAILPULSE_HTTP_PORT=str(free_port()),
        MAILPULSE_SMTP_PORT=str(free_port()),
    )
    env.update(extra)
    return env


class System:
    """`python -m app.cli run [...]` in its own session, stdout read line by line."""

    def __init__(
        self, tmp_path: Path, *args: str, data_dir: Path | None = None, **env: str
    ) -> None:
        self.data_dir = data_dir or tmp_path / "data"
        self.env = base_env(self.data_dir, **env)
        self.base_url = f"http://127.0.0.1:{self.env['MAILPULSE_HTTP_PORT']}"
        self.err_path = tmp_path / "supervisor.stderr"
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "run", *args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, needle: str, timeout: float = 30.0) -> str:
        """The first line (seen so far or to come) containing `needle`."""
        for line in self.lines:
            if needle in line:
                return line
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(0.0, remaining)) if remaining > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(
                    f"no line with {needle!r} on stdout within {timeout}s (exit code "
                    f"{self.proc.poll()}); stdout: {self.lines!r}\nstderr: {self.stderr_tail()}"
                )
            self.lines.append(line)
            if needle in line:
                return line

    def stderr_tail(self, n: int = 30) -> str:
        try:
            text = self.err_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-n:])

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float = 30.0) -> None:
        wait_until(self.healthy, timeout, f"GET /healthz 200 (stderr: {self.stderr_tail()})")

    def redis_pid(self) -> int:
        state = embedded_state(self.data_dir)
        assert state is not None, f"no embedded Redis in {self.data_dir}"
        pid: int = state["pid"]
        return pid

    def close(self) -> None:
        """Kill whatever is left of the tree (the whole process group) and reap the supervisor."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def running(
    tmp_path: Path, *args: str, data_dir: Path | None = None, **env: str
) -> Iterator[System]:
    system = System(tmp_path, *args, data_dir=data_dir, **env)
    try:
        yield system
    finally:
        system.close()


def wait_for_parts(system: System, names: tuple[str, ...]) -> dict[int, str]:
    def complete() -> dict[int, str] | None:
        tree = descendants(system.proc.pid)
        ok = all(any(name in cmd for cmd in tree.values()) for name in names)
        return tree if ok else None

    return wait_until(complete, 20, f"children {names} of the supervisor")
