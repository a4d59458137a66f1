"""``is_running``: live processes, killed ones (a zombie not reaped yet), and a process whose
leader thread has exited while another thread still runs (it still holds its files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shardkey.devnet.process import is_running

# The raw exit system call ends only the calling thread (exit_group ends them all).
SYS_EXIT = {"x86_64": 60, "aarch64": 93}.get(os.uname().machine)
LEADER_EXITS = f"""
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(60,)).start()
time.sleep(0.2)
ctypes.CDLL(None).syscall({SYS_EXIT}, 0)
"""


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_a_live_process_runs_and_a_killed_one_does_not_even_before_it_is_reaped() -> None:
    assert is_running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert is_running(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        assert _until(lambda: _state(child.pid) == "Z")  # dead, not reaped: /proc still has it
        assert not is_running(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not is_running(child.pid)


@pytest.mark.skipif(SYS_EXIT is None, reason="the exit system call number is known for x86_64 and aarch64")
def test_a_process_whose_leader_exited_runs_while_another_thread_does() -> None:
    child = subprocess.Popen([sys.executable, "-c", LEADER_EXITS])
    try:
        assert _until(lambda: _state(child.pid) == "Z")  # the leader is a zombie...
        assert is_running(child.pid)  # ...and its other thread still runs
        os.kill(child.pid, signal.SIGKILL)
        assert _until(lambda: not is_running(child.pid))
    finally:
        child.kill()
        child.wait()
