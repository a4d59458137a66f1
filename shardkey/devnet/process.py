"""Background processes of a devnet: start detached, wait until ready, stop by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shardkey.errors import ShardKeyError


class DevnetError(ShardKeyError):
    """A devnet process failed to start or to become ready."""


def start_detached(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                   cwd: Path | None = None) -> int:
    """Start ``argv`` in its own session (it outlives this process); return its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        os.chmod(log_path, 0o600)
        proc = subprocess.Popen(  # noqa: S603 - argv is built by the devnet, not from input
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=cwd)
    return proc.pid


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process: not gone, and not a zombie whose threads are all
    gone too. A SIGKILLed leader shows as a zombie while its other threads are still torn
    down, and their shared files (a listening socket) close only with the last of them, so
    until then its port cannot be taken over by a restart.

    The leader's own state is read first: a live leader answers without listing the threads
    (a listing taken while threads come and go is the part that can come back short)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    leader = _task_state(f"/proc/{pid}/stat")
    if leader is None:
        return not os.path.isdir("/proc/self")  # no /proc: the signal says it exists
    if leader not in ("Z", "X"):
        return True
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False  # gone since its stat was read
    return any(_task_state(f"/proc/{pid}/task/{task}/stat") not in (None, "Z", "X") for task in tasks)


def _task_state(stat_path: str) -> str | None:
    """The state letter of a ``/proc`` stat file (None: the task is gone)."""
    try:
        with open(stat_path) as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except OSError:
        return None


def wait_until(check: Callable[[], bool], timeout: float, what: str, pid: int | None = None,
               log_path: Path | None = None) -> None:
    """Poll ``check`` until true; fail naming ``what`` (and the log's tail) on timeout or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        if pid is not None and not is_running(pid):
            raise DevnetError(f"{what} exited during start-up{_tail(log_path)}")
        time.sleep(0.05)
    raise DevnetError(f"{what} not ready after {timeout:.0f} s{_tail(log_path)}")


def stop(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM the process group of ``pid``, SIGKILL after ``timeout``; True if it was running."""
    if not is_running(pid):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_running(pid):
        time.sleep(0.05)
    if is_running(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True


def _tail(log_path: Path | None, lines: int = 15) -> str:
    if log_path is None or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_path}:\n" + "\n".join(text)
