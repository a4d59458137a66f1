"""Bring devnet members back: ``devnet up`` on a running devnet, ``devnet restart NAME``.

A KOS committee member, holder agent or the repair service that died is started
again from the same settings file, so it resumes from its state folder (event cursor, pending
requests, stored shards). Anvil holds the chain in memory: when it died the chain is gone, and
nothing here can bring it back; :class:`ChainLostError` says so and what to run.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import httpx

from shardkey.devnet.info import members as members  # re-exported (tests read it here)
from shardkey.devnet.process import DevnetError, is_running, stop, wait_until
from shardkey.devnet.spawner import Spawner
from shardkey.errors import UsageError
from shardkey.fsutil import atomic_write_bytes

MEMBER_DOWN_EXIT = 5
READY_TIMEOUT = 120.0


class MemberDownError(DevnetError):
    """A devnet member is not running (``devnet status`` exits with this code)."""

    exit_code = MEMBER_DOWN_EXIT


class ChainLostError(MemberDownError):
    """The devnet's anvil died: its chain state, kept in memory, is gone."""


def chain_lost(home: Path, pid: int) -> ChainLostError:
    """The error for a devnet whose anvil (``pid``) is no longer running."""
    return ChainLostError(
        f"the devnet's anvil (pid {pid}) is not running: it kept the chain in memory, so the "
        f"chain state is gone and cannot be brought back; run 'shardkey --home {home} devnet "
        f"down' then 'shardkey --home {home} devnet up' to start a new devnet")


def service_env() -> dict[str, str]:
    """The environment devnet agents run with (this one, output unbuffered)."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def member_ready(entry: dict[str, Any]) -> bool:
    """Whether a started member answers: a holder's health 200, a KOS's or the repairer's
    heartbeat by its pid."""
    if "endpoint" in entry:
        return httpx.get(f"{entry['endpoint']}/v1/health", timeout=1.0).status_code == 200
    heartbeat = Path(entry["state_dir"]) / "heartbeat.json"
    return bool(heartbeat.exists() and json.loads(heartbeat.read_text()).get("pid") == entry["pid"])


def wait_ready(entry: dict[str, Any]) -> None:
    """Wait until ``entry`` is ready; fail naming it, with its log's tail, when it exits."""
    wait_until(functools.partial(member_ready, entry), READY_TIMEOUT, entry["name"], pid=entry["pid"],
               log_path=Path(entry["log"]))


def module_of(entry: dict[str, Any]) -> str:
    """The agent module a devnet entry runs."""
    if "module" in entry:
        return str(entry["module"])
    return "holder_agent" if "endpoint" in entry else "kos"


def _start_again(spawner: Spawner, entry: dict[str, Any]) -> None:
    entry["pid"] = spawner.spawn(module_of(entry), Path(entry["config"]), Path(entry["log"]))


def _save(data: dict[str, Any], home: Path) -> None:
    atomic_write_bytes(home / "devnet.json", (json.dumps(data, indent=2) + "\n").encode(), mode=0o600)


def revive(home: Path, data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    """Start again every KOS member, holder and repairer of ``data`` that is not running; their names.

    ``devnet.json`` is rewritten with the new pids; each is waited for until ready.
    """
    anvil_pid = int(data["anvil"]["pid"])
    if not is_running(anvil_pid):
        raise chain_lost(home, anvil_pid)
    dead = [e for e in members(data)
            if not (e.get("pid") and is_running(int(e["pid"])))]
    if not dead:
        return []
    spawner = Spawner(home / "logs" / "spawner.log", env or service_env())
    try:
        for entry in dead:
            _start_again(spawner, entry)
    finally:
        spawner.close()
        _save(data, home)
    for entry in dead:
        wait_ready(entry)
    return [str(e["name"]) for e in dead]


def restart(home: Path, data: dict[str, Any], name: str, env: dict[str, str] | None = None) -> None:
    """Stop the member called ``name`` (when it runs) and start it again with its state."""
    by_name = {str(e["name"]): e for e in members(data)}
    if name == "anvil":
        raise UsageError("anvil cannot be restarted: it holds the chain in memory; "
                         "'shardkey devnet down' then 'shardkey devnet up' starts a new devnet")
    if name not in by_name:
        raise UsageError(f"no devnet member {name!r}; members: {', '.join(by_name)}")
    anvil_pid = int(data["anvil"]["pid"])
    if not is_running(anvil_pid):
        raise chain_lost(home, anvil_pid)
    entry = by_name[name]
    if entry.get("pid"):
        stop(int(entry["pid"]))
    spawner = Spawner(home / "logs" / "spawner.log", env or service_env())
    try:
        _start_again(spawner, entry)
    finally:
        spawner.close()
        _save(data, home)
    wait_ready(entry)
