"""Devnet supervision and the CLI's error messages, with real processes.

Two killed KOS members (of 3, threshold 2) make ``devnet status`` exit 5, a fetch of an
approved request names the silent members (not missing holders), ``devnet up`` brings them
back from their state folders, and the request is then served. ``devnet restart NAME`` restarts one
member. A remote RPC that does not answer is named, without the devnet hint; a dead
devnet anvil is named as such. The ``devnet`` fixture is this module's own (module scope);
the module's last test kills its anvil.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import httpx

from shardkey.devnet.anvil import free_port
from shardkey.devnet.process import is_running
from tests.e2e.conftest import Cli

OPEN_POLICY = "requesters: [requester]\nthreshold: 3\n"


def kill(pid: int) -> None:
    """SIGKILL the process group of ``pid`` (npm's anvil is a wrapper with a child)."""
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_running(pid):
        assert time.monotonic() < deadline, f"pid {pid} survived SIGKILL"
        time.sleep(0.05)


def store(devnet: Cli, tmp_path: Path, data: bytes) -> str:
    (tmp_path / "input.bin").write_bytes(data)
    (tmp_path / "policy.yaml").write_text(OPEN_POLICY)
    out = devnet.json("store", str(tmp_path / "input.bin"), "--policy", str(tmp_path / "policy.yaml"))
    return str(out["dataset"])


def test_killed_kos_members_status_exits_5_fetch_names_them_and_up_brings_them_back(devnet: Cli,
                                                                                   tmp_path: Path) -> None:
    # the devnet's committee is 3 members, threshold 2: two down and nothing can be released
    members = devnet.devnet["kos_members"][:2]
    for member in members:
        kill(int(member["pid"]))
    status = devnet.run("devnet", "status", check=5)
    assert "down: kos-member-1, kos-member-2;" in status.stderr
    assert "'shardkey devnet up' starts them again" in status.stderr

    data = os.urandom(100_000)
    dataset = store(devnet, tmp_path, data)
    request = devnet.json("request", dataset)
    assert request["state"] == "approved"
    deadline = time.monotonic() + 30
    while devnet.json("kos", "status")[2]["releases"] < 1:  # the third member runs and releases
        assert time.monotonic() < deadline, "kos-member-3 never released"
        time.sleep(0.5)
    out = tmp_path / "restored.bin"
    refused = devnet.run("fetch", str(request["request"]), "-o", str(out), "--timeout", "4", check=4)
    assert (f"the KOS committee has not released request {request['request']}: 1 of the 2 member "
            "releases needed (committee epoch 1, 3 members)") in refused.stderr
    silent = refused.stderr.split("no answer from: ")[1].split(";")[0]
    assert silent.split(", ") == [m["address"] for m in members]
    assert "fragment holders needed" not in refused.stderr
    assert not out.exists()

    revived = devnet.run("devnet", "up")
    assert "restarted: kos-member-1, kos-member-2 (from their state folders)" in revived.stdout
    assert [m["pid"] for m in devnet.devnet["kos_members"][:2]] != [m["pid"] for m in members]
    devnet.run("devnet", "status")  # everything runs again: exit 0
    devnet.run("fetch", str(request["request"]), "-o", str(out))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_restart_name_restarts_one_holder_with_its_state(devnet: Cli) -> None:
    before = devnet.holder("holder-2")
    devnet.run("devnet", "restart", "holder-2")
    after = devnet.holder("holder-2")
    assert after["pid"] != before["pid"] and not is_running(int(before["pid"]))
    health = httpx.get(f"{after['endpoint']}/v1/health", timeout=5).json()
    assert health["status"] == "ok" and health["storage"]["used"] > 0  # the shards it held
    devnet.run("devnet", "status")


def test_restart_refuses_anvil_and_unknown_names(devnet: Cli) -> None:
    assert "holds the chain in memory" in devnet.run("devnet", "restart", "anvil", check=2).stderr
    unknown = devnet.run("devnet", "restart", "holder-99", check=2)
    assert "no devnet member 'holder-99'; members: kos-member-1, kos-member-2, kos-member-3, holder-1" \
        in unknown.stderr


def test_a_remote_rpc_that_does_not_answer_is_named_without_the_devnet_hint(devnet: Cli,
                                                                           tmp_path: Path) -> None:
    deployment = json.loads((devnet.home / "deployment.json").read_text())
    port = free_port()
    deployment["rpc_url"] = f"http://127.0.0.1:{port}"
    (tmp_path / "deployment.json").write_text(json.dumps(deployment))
    (tmp_path / "network.yaml").write_text("deployment: deployment.json\naccounts: {}\n")
    proc = devnet.run("--network", str(tmp_path / "network.yaml"), "policy", "show", "0x" + "11" * 32,
                      check=1)
    assert f"hint: the RPC endpoint http://127.0.0.1:{port} (deployment of --network" in proc.stderr
    assert "devnet up" not in proc.stderr


def test_dead_anvil_is_named_and_up_exits_5_saying_what_to_run(devnet: Cli) -> None:
    kill(int(devnet.devnet["anvil"]["pid"]))
    proc = devnet.run("policy", "show", "0x" + "11" * 32, check=1)
    assert "hint: the devnet's anvil in" in proc.stderr and "is not running" in proc.stderr
    assert "is the chain running?" not in proc.stderr
    up = devnet.run("devnet", "up", check=5)
    assert "chain state is gone" in up.stderr and "devnet down' then" in up.stderr
    assert "down: anvil" in devnet.run("devnet", "status", check=5).stderr
