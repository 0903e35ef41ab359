"""Small process helpers for child processes that must not outlive mailpulse."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

_PR_SET_PDEATHSIG = 1

# Loaded at import time, not in the forked child: dlopen() after fork() in a
# threaded parent can deadlock on a lock some other thread held at fork time.
_libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent() -> None:
    """Make the kernel SIGTERM this process when its parent dies, even by SIGKILL.

    Meant as ``preexec_fn`` so a helper such as redis-server never survives a
    crashed mailpulse. Linux ties the signal to the *thread* that forked the
    child, so spawn from a long-lived thread (the main thread), not a pool
    worker that may exit. Elsewhere this is a no-op.
    """
    if _libc is None:
        return
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process; zombies count as dead since they hold nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return sys.platform != "linux"
    return state not in (b"Z", b"X")


def process_cmdline(pid: int) -> list[str]:
    """Command line of ``pid``, to tell a recycled pid from the process we recorded."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


OPEN_FILES_CEILING = 1 << 20
"""What to ask for when the hard limit is unlimited (the kernel's usual nr_open)."""


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one; returns the soft limit now.

    An engine holds a socket per SMTP connection (up to a domain's `max_connections`
    for each of hundreds of queues) and a web process one per websocket client: the
    usual default soft limit of 1,024 would refuse them long before the machine must.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return soft
