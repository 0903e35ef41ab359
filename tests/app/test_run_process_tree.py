"""`mailpulse run`: the real process tree (supervisor, parts, embedded Redis), no mocks.

Every test starts the supervisor as a subprocess in its own session, reads its
stdout line by line, and inspects its descendants through /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TypeVar

import httpx
from processes import free_port, wait_until

from app.process import pid_alive, process_cmdline

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

PARTS = ("app.cli web", "app.cli engine", "app.cli inbound")
DEMO_PARTS = ("app.cli simulate", "app.cli demo-traffic")


# -- helpers -------------------------------------------------------------------------------


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


def base_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("MAILPULSE_")
    }
    env.update(
        MAILPULSE_DATA_DIR=str(data_dir),
        MAILPULSE_HTTP_PORT=str(free_port()),
        MAILPULSE_SMTP_PORT=str(free_port()),
    )
    return env


class System:
    """`python -m app.cli run [...]` in its own session, stdout read line by line."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.data_dir = tmp_path / "data"
        self.env = base_env(self.data_dir)
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
        state = json.loads((self.data_dir / "redis" / "embedded.json").read_text())
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
def running(tmp_path: Path, *args: str) -> Iterator[System]:
    system = System(tmp_path, *args)
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


# -- tests ---------------------------------------------------------------------------------


def test_demo_runs_delivers_and_ctrl_c_stops_the_whole_tree(tmp_path: Path) -> None:
    with running(tmp_path, "--demo") as system:
        system.wait_line("mailpulse is running")
        login = system.wait_line("demo login:")
        assert "demo@mailpulse.example" in login
        system.wait_healthy()

        creds = json.loads((system.data_dir / "demo.json").read_text())
        auth = (creds["api_user"], creds["api_key"])
        assert f"{creds['api_user']}:{creds['api_key']}" in system.wait_line("demo API_USER:")

        def delivered() -> list[dict[str, object]]:
            response = httpx.get(
                f"{system.base_url}/v1/emails",
                params={"status": "delivered", "limit": 5},
                auth=auth,
                timeout=5,
            )
            assert response.status_code == 200, response.text
            items: list[dict[str, object]] = response.json()["items"]
            return items

        items = wait_until(delivered, 30, "a delivered demo email")
        assert items[0]["status"] == "delivered"
        assert items[0]["api_user"] == creds["api_user"]

        tree = wait_for_parts(system, PARTS + DEMO_PARTS)
        redis_pid = system.redis_pid()
        assert redis_pid in tree, (redis_pid, tree)
        assert "redis-server" in tree[redis_pid]
        assert redis_servers_in(system.data_dir / "redis") == [redis_pid]

        before = snapshot(descendants(system.proc.pid))
        system.proc.send_signal(signal.SIGINT)
        try:
            code = system.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"supervisor still running 15s after SIGINT: {system.stderr_tail()}"
            ) from None
        assert code == 0, system.stderr_tail()

        wait_gone(before, 10, "the tree after SIGINT")
        assert redis_servers_in(system.data_dir / "redis") == []
        assert not (system.data_dir / "redis" / "embedded.json").exists()


def test_sigkilled_supervisor_takes_every_descendant_with_it(tmp_path: Path) -> None:
    with running(tmp_path, "--demo") as system:
        system.wait_line("mailpulse is running")
        system.wait_healthy()
        tree = wait_for_parts(system, PARTS + DEMO_PARTS)
        redis_pid = system.redis_pid()
        assert redis_pid in tree
        before = snapshot(tree)

        system.proc.kill()
        assert system.proc.wait(timeout=10) == -signal.SIGKILL

        wait_gone(before, 15, "orphans exit by PDEATHSIG")
        assert redis_servers_in(system.data_dir / "redis") == []


def test_run_without_demo_starts_no_simulator_and_no_demo_traffic(tmp_path: Path) -> None:
    with running(tmp_path) as system:
        system.wait_line("mailpulse is running")
        system.wait_line("Ctrl-C stops everything.")
        system.wait_healthy()
        tree = wait_for_parts(system, PARTS)
        commands = list(direct_children(system.proc.pid).values())
        assert len([c for c in commands if "app.cli" in c]) == 3, commands
        for cmd in tree.values():
            assert "simulate" not in cmd and "demo-traffic" not in cmd, tree
        banner = "\n".join(system.lines)
        assert "demo login" not in banner and "demo API_USER" not in banner, banner
        assert not (system.data_dir / "demo.json").exists()
        assert not (system.data_dir / "demo-routes.toml").exists()

        # Ctrl-C at a terminal signals the whole foreground process group at once.
        before = snapshot(tree)
        os.killpg(system.proc.pid, signal.SIGINT)
        assert system.proc.wait(timeout=15) == 0, system.stderr_tail()
        wait_gone(before, 10, "the tree after Ctrl-C")
        assert redis_servers_in(system.data_dir / "redis") == []


def test_a_crashed_part_is_restarted(tmp_path: Path) -> None:
    with running(tmp_path) as system:
        system.wait_line("mailpulse is running")
        wait_for_parts(system, PARTS)

        def engines() -> dict[int, str]:
            return {
                pid: cmd
                for pid, cmd in direct_children(system.proc.pid).items()
                if "app.cli engine" in cmd
            }

        (old,) = engines()
        old_start = start_time(old)
        os.kill(old, signal.SIGKILL)

        def new_engine() -> int | None:
            fresh = [pid for pid in engines() if pid != old]
            return fresh[0] if fresh else None

        new = wait_until(new_engine, 15, f"a new engine child (stderr: {system.stderr_tail()})")
        assert not (pid_alive(old) and start_time(old) == old_start)
        wait_until(
            lambda: "engine exited with -9" in system.err_path.read_text(errors="replace"),
            5,
            "the supervisor reports the crash on stderr",
        )
        # The new engine stays up, and so does the rest of the system.
        assert pid_alive(new)
        system.wait_healthy()
        assert system.proc.poll() is None

        before = snapshot(descendants(system.proc.pid))
        system.proc.send_signal(signal.SIGINT)
        assert system.proc.wait(timeout=15) == 0, system.stderr_tail()
        wait_gone(before, 10, "the tree after SIGINT")
