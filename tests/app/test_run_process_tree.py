"""`mailpulse run`: the real process tree (supervisor, parts, embedded Redis), no mocks.

Every test starts the supervisor as a subprocess in its own session, reads its
stdout line by line, and inspects its descendants through /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from processes import (
    descendants,
    direct_children,
    redis_servers_in,
    running,
    snapshot,
    start_time,
    wait_for_parts,
    wait_gone,
    wait_until,
)

from app.process import OPEN_FILES_CEILING, pid_alive

PARTS = ("app.cli web", "app.cli engine", "app.cli inbound")
DEMO_PARTS = ("app.cli simulate", "app.cli demo-traffic")


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


def open_files_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open files limit for {pid}")


def test_every_part_lifts_its_open_files_limit(tmp_path: Path) -> None:
    """Started under the usual soft limit of 1,024 open files, each part runs with the
    hard limit: an engine's SMTP connections and a web process's websockets need more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard limit here is {hard}: nothing to lift")
    wanted = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    with contextlib.ExitStack() as stack:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        try:
            system = stack.enter_context(running(tmp_path))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        system.wait_line("mailpulse is running")
        assert open_files_limit(system.proc.pid) == wanted
        tree = wait_for_parts(system, PARTS)
        parts = [pid for pid, cmd in tree.items() if any(part in cmd for part in PARTS)]
        assert len(parts) == len(PARTS)
        assert {pid: open_files_limit(pid) for pid in parts} == dict.fromkeys(parts, wanted)
