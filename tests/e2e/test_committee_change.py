"""A KOS committee change on a real devnet (3 members, threshold 2): a fourth member joins, the
first retires and the threshold goes to 3; new datasets are dealt to the new epoch at once, a
dataset of the old epoch is still served by the old epoch's members (threshold 2), and
``shardkey redeal`` moves it to the new epoch (only its keys are re-dealt), after which the
retired member is not needed for it and all three new members are.

The new member is set up as an operator would (``kos init``, funded, ``kos run``) and named by
the admin's ``kos committee start``; it runs as its own process beside the devnet's members."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardkey.chain.bindings import ShardKeyChain
from shardkey.cli.context import Env
from shardkey.crypto.committee_envelope import committee_marker
from shardkey.devnet.process import stop
from tests.e2e.conftest import Cli
from tests.support.operator import PASSPHRASE, Operator, end, wait_for

POLICY = "requesters: [requester, owner]\nthreshold: 2\n"


@pytest.fixture(scope="module")
def chain(devnet: Cli) -> ShardKeyChain:
    return Env(home=devnet.home, network_file=None, passphrase_file=None, max_fee_gwei=None).chain


@pytest.fixture(scope="module")
def new_member(devnet: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A fourth KOS member's keys and running process (not yet in any committee epoch)."""
    root = tmp_path_factory.mktemp("new-member")
    op = Operator(root, devnet.devnet["rpc_url"])
    (root / "pass").write_text(PASSPHRASE + "\n")
    os.chmod(root / "pass", 0o600)
    member = op.json("kos", "init", "kos", "--deployment", str(devnet.home / "deployment.json"),
                     "--passphrase-file", "pass", "--confirmations", "1")
    op.fund(member["address"])
    member["hpke_keystore"] = str(root / "kos" / "kos.hpke.json")
    member["root"] = str(root)
    yield member


def _store(devnet: Cli, tmp_path: Path, data: bytes) -> tuple[str, bytes]:
    source, policy = tmp_path / "input.bin", tmp_path / "policy.yaml"
    source.write_bytes(data)
    policy.write_text(POLICY)
    dataset = devnet.json("store", str(source), "--policy", str(policy), "--shard-size", "65536",
                          "--threshold", "2", "--fragment-holders", "3")["dataset"]
    return dataset, bytes.fromhex(dataset.removeprefix("0x"))


def _fetch(devnet: Cli, chain: ShardKeyChain, dataset: str, out: Path, data: bytes) -> set[str]:
    """Request and fetch ``dataset`` (no approval needed); the members that released it."""
    request = devnet.json("request", dataset)
    assert request["state"] == "approved", request
    devnet.run("fetch", str(request["request"]), "-o", str(out))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    return {r.member for r in chain.committee.releases(int(request["request"])) if r.released}


def test_a_committee_change_serves_old_and_new_datasets_and_redeal_moves_the_old(
        devnet: Cli, chain: ShardKeyChain, new_member: dict[str, str], tmp_path: Path) -> None:
    members = {m["name"]: m for m in devnet.devnet["kos_members"]}
    first, second, third = (members[f"kos-member-{i}"]["address"] for i in (1, 2, 3))
    old_data = os.urandom(150_000)
    old, old_id = _store(devnet, tmp_path, old_data)
    assert chain.committee.deal(old_id, 1)[0] == 1

    op = Operator(Path(new_member["root"]), devnet.devnet["rpc_url"])
    log = Path(new_member["root"]) / "member.log"
    proc: subprocess.Popen[bytes] = op.start("kos", "run", "--config", "kos/kos.toml", log=log)
    try:
        # epoch 2: member 1 retires, the new member joins, the threshold goes from 2 to 3
        keystore = {name: m["hpke_keystore"] for name, m in members.items()}
        devnet.run("kos", "committee", "start", "--member", f"{second}={keystore['kos-member-2']}",
                   "--member", f"{third}={keystore['kos-member-3']}",
                   "--member", f"{new_member['address']}={new_member['hpke_keystore']}",
                   "--threshold", "3", "--as", "admin")
        shown = devnet.json("kos", "committee", "show")
        assert (shown["epoch"], shown["threshold"]) == (2, 3)
        assert [m["address"] for m in shown["members"]] == [second, third, new_member["address"]]
        heartbeat = Path(new_member["root"]) / "kos" / "state" / "heartbeat.json"
        wait_for(lambda: json.loads(heartbeat.read_text())["ok"], 60, "the new member", proc, log)

        # a new dataset is dealt to epoch 2 at once
        new_data = os.urandom(90_000)
        new, new_id = _store(devnet, tmp_path, new_data)
        assert chain.committee.deal(new_id, 1)[0] == 2
        deal = chain.datasets.fragment_deal(new_id, 1, chain.deployment.start_block)
        assert list(deal.sealed_wrap_keys) == [committee_marker(2)] * 3

        # the old dataset is still served by epoch 1's members (the new one is not among them)
        assert _fetch(devnet, chain, old, tmp_path / "old-1.bin", old_data) <= {first, second, third}

        # member 1 retired and stopped: the new dataset is served by all three of epoch 2
        stop(int(members["kos-member-1"]["pid"]))
        epoch_two = {second, third, new_member["address"]}
        assert _fetch(devnet, chain, new, tmp_path / "new-1.bin", new_data) == epoch_two

        # the owner moves the old dataset to epoch 2 (members 2 and 3 of epoch 1 release its keys)
        moved = json.loads(devnet.run("redeal", old, "--json", timeout=240).stdout)
        assert moved["epoch"] == 2 and chain.committee.deal(old_id, 2)[0] == 2

        # now only epoch 2 serves it, all three of its members; the retired member is not needed
        assert _fetch(devnet, chain, old, tmp_path / "old-2.bin", old_data) == epoch_two
    finally:
        assert end(proc) == 0, log.read_text()[-3000:]
        devnet.run("devnet", "up")  # member 1 back, for the fixture's teardown
