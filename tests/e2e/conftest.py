"""End-to-end fixtures: a real devnet (anvil, KOS and holder processes) driven through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Cli:
    """Runs ``shardkey --home HOME ...`` as a subprocess, as a user would."""

    home: Path

    def run(self, *args: str, check: int | None = 0, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``env``: extra environment variables (e.g. a fault hook for a restarted member)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        proc = subprocess.run([sys.executable, "-m", "shardkey", "--home", str(self.home), *args],
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)
        if check is not None and proc.returncode != check:
            raise AssertionError(f"shardkey {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "--json").stdout)

    @property
    def devnet(self) -> dict:
        return json.loads((self.home / "devnet.json").read_text())

    def holder(self, name: str) -> dict:
        return next(h for h in self.devnet["holders"] if h["name"] == name)

    def kos_member(self, name: str) -> dict:
        """A KOS committee member's ``devnet.json`` entry (``kos-member-1``, ...)."""
        return next(m for m in self.devnet["kos_members"] if m["name"] == name)


def start_devnet(home: Path, holders: int = 5, repairer: bool = True,
                 kos: tuple[int, int] | None = None) -> Cli:
    cli = Cli(home)
    started = time.monotonic()
    committee = ("--kos", str(kos[0]), "--kos-threshold", str(kos[1])) if kos else ()
    cli.run("devnet", "up", "--holders", str(holders), "--block-time", "0.25",
            *(() if repairer else ("--no-repairer",)), *committee, timeout=180)
    print(f"devnet up in {time.monotonic() - started:.1f} s")
    return cli


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Cli]:
    """A devnet shared by the tests of one module (``DEVNET_HOLDERS`` in the module: how many
    holders, default 5; ``DEVNET_REPAIRER = False``: without the repair service, for a module
    that moves shards by hand; ``DEVNET_KOS = (m, t)``: a KOS committee of m members, threshold
    t, instead of the devnet's default 3 and 2; the members are in ``devnet.json`` under
    ``kos_members``)."""
    cli = start_devnet(tmp_path_factory.mktemp("devnet"), getattr(request.module, "DEVNET_HOLDERS", 5),
                       getattr(request.module, "DEVNET_REPAIRER", True),
                       getattr(request.module, "DEVNET_KOS", None))
    try:
        yield cli
    finally:
        cli.run("devnet", "down", check=None)
