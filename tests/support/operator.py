"""An operator at a shell: ``shardkey ...`` run in one folder with a clean environment, the
services it starts as real processes, and a faucet (``anvil_setBalance``). Shared by the
end-to-end tests that set parties up from nothing with the documented commands
(tests/e2e/test_operator_lifecycle.py, tests/e2e/test_rehearsal.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

PASSPHRASE = "correct horse battery staple"  # noqa: S105 - a test passphrase
FAUCET_WEI = 10**18


@dataclass
class Operator:
    """Runs ``shardkey ...`` in one folder, as a person would, with a clean environment."""

    root: Path
    rpc_url: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SHARDKEY_")}  # nothing leaks in from the developer's shell
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run(self, *args: str, check: int | None = 0,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "shardkey", *args], cwd=self.root, capture_output=True,
                              text=True, timeout=timeout, env=self.env(), check=False)
        if check is not None and proc.returncode != check:
            raise AssertionError(f"shardkey {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        assert "Traceback" not in proc.stderr, proc.stderr
        assert PASSPHRASE not in proc.stdout + proc.stderr
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "--json").stdout)

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", "shardkey", *args], cwd=self.root, stdout=out,
                                    stderr=subprocess.STDOUT, env=self.env())

    def fund(self, address: str, wei: int = FAUCET_WEI) -> None:
        """The faucet."""
        httpx.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance",
                                       "params": [address, hex(wei)]}, timeout=5).raise_for_status()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, proc: subprocess.Popen[bytes],
             log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what}: exited {proc.returncode}\n{log.read_text()}")
        try:
            if predicate():
                return
        except (httpx.HTTPError, OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what}: not ready in {timeout} s\n{log.read_text()}")


def status_when_saved(op: Operator, role: str, config: str, timeout: float = 40) -> dict:
    """``ROLE status`` once the service has saved its cursor (idle ranges: every 10 s)."""
    deadline = time.monotonic() + timeout
    while True:
        status = op.json(role, "status", "--config", config)
        if status["last_block_seen"] is not None or time.monotonic() > deadline:
            return status
        time.sleep(1)


def end(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)
