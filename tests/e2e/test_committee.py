"""Threshold KOS end to end on a real devnet with a committee of 3 members, threshold 2
(``devnet up``'s default: anvil, the contracts, three member processes, holder
processes, HTTP): store deals every wrap key to the committee; a fetch restores byte for byte
once two members released; a member that signs a wrong share is proven wrong on chain
(``ShareFaultProven``) by the holder, which waits for the third member (across its own
restart) so the fetch still succeeds; with one member denying and one stopped the fetch fails
naming both; a request two members deny is denied and the fetch names both deniers; with one
member stopped it is served; and an attacker process holding one member's keystore, copies of
every holder's data folder and the chain's deal events opens no bundle, while the same process
given two members' keystores does (the control)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from shardkey.chain.bindings import ShardKeyChain
from shardkey.cli.context import Env
from shardkey.crypto.committee_envelope import committee_marker
from shardkey.devnet.process import is_running, stop
from shardkey.faults import CORRUPT_SHARES_ENV
from shardkey.keys import load_account_file
from tests.e2e.committee_attacker import NOTHING_OPENED
from tests.e2e.conftest import Cli
from tests.support.waiting import wait_until

NOT_ALLOWED_REQUESTER = 1  # DenialReason.NOT_ALLOWED_REQUESTER
POLICY = """\
requesters: [requester, owner]
approvals:
  - {group: client, members: [client-rep], required: 1}
threshold: 2
"""



@pytest.fixture(scope="module")
def chain(devnet: Cli) -> ShardKeyChain:
    return Env(home=devnet.home, network_file=None, passphrase_file=None, max_fee_gwei=None).chain


def _members(devnet: Cli) -> list[dict[str, Any]]:
    members = devnet.devnet["kos_members"]
    assert len(members) == 3
    return list(members)


def _stop(member: dict[str, Any]) -> None:
    stop(int(member["pid"]))
    assert not is_running(int(member["pid"]))


def _restart(devnet: Cli, name: str) -> None:
    devnet.run("devnet", "restart", name)


def _store(devnet: Cli, tmp_path: Path, data: bytes, threshold: int = 2) -> tuple[str, bytes]:
    source, policy = tmp_path / "input.bin", tmp_path / "policy.yaml"
    source.write_bytes(data)
    policy.write_text(POLICY)
    dataset = devnet.json("store", str(source), "--policy", str(policy), "--shard-size", "65536",
                          "--threshold", str(threshold), "--fragment-holders", "3")["dataset"]
    return dataset, bytes.fromhex(dataset.removeprefix("0x"))


def _approved(devnet: Cli, dataset: str) -> int:
    request = devnet.json("request", dataset)
    assert request["state"] == "pending"
    devnet.run("approve", str(request["request"]), "--as", "client-rep", "--yes")
    return int(request["request"])


def _fetch_same(devnet: Cli, request_id: int, out: Path, data: bytes) -> None:
    devnet.run("fetch", str(request_id), "-o", str(out))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_store_deals_to_the_committee_and_fetch_restores_byte_for_byte(devnet: Cli, chain: ShardKeyChain,
                                                                       tmp_path: Path) -> None:
    committee = chain.committee
    assert committee is not None
    epoch = committee.current_epoch()
    assert epoch >= 1 and committee.committee(epoch).threshold == 2
    data = os.urandom(300_000)
    dataset, ds = _store(devnet, tmp_path, data)
    registration = chain.datasets.registration(ds, chain.deployment.start_block)
    assert set(registration.sealed_wrap_keys) == {committee_marker(epoch)}  # nothing sealed to one KOS key
    dealt_epoch, root = committee.deal(ds, 1)
    assert dealt_epoch == epoch and any(root)
    record = committee.deal_record(ds, 1, chain.deployment.start_block)
    assert len(record.sealed_shares) == 3 * 3 and record.root == root
    # every holder confirmed custody once the deal was in: the dataset is active
    wait_until(lambda: chain.datasets.dataset(ds).status.name == "ACTIVE", 60, "custody of every holder")

    request_id = _approved(devnet, dataset)
    _fetch_same(devnet, request_id, tmp_path / "restored.bin", data)
    releases = committee.releases(request_id, chain.deployment.start_block)
    assert sum(r.released for r in releases) >= 2
    assert all(len(r.sealed_envelopes) == 3 for r in releases if r.released)


def test_a_wrong_share_is_proven_and_the_holder_waits_for_another_member(devnet: Cli, chain: ShardKeyChain,
                                                                         tmp_path: Path) -> None:
    committee = chain.committee
    assert committee is not None
    bad, honest, later = _members(devnet)
    data = os.urandom(200_000)
    dataset, ds = _store(devnet, tmp_path, data, threshold=3)  # all three fragment holders needed
    target = chain.datasets.fragment_set(ds).holders[0]
    target_name = next(h["name"] for h in devnet.devnet["holders"] if h["address"] == target)

    _stop(later)  # so the holder cannot ignore the wrong share: only `bad` and `honest` release
    devnet.run("devnet", "restart", bad["name"], env={CORRUPT_SHARES_ENV: target})
    try:
        request_id = _approved(devnet, dataset)
        wait_until(lambda: committee.share_fault_proven(request_id, bad["address"], target), 90,
                   "the holder's proof of the wrong share")
        proven = committee.contract.get_logs("ShareFaultProven", chain.deployment.start_block,
                                             requestId=request_id)
        assert [(e.args["member"], e.args["holder"]) for e in proven] == [(bad["address"], target)]
        wait_until(lambda: chain.retrievals.request(request_id).deliveries >= 2, 60,
                   "the other two deliveries")
        assert not chain.retrievals.delivered(request_id, target)  # one verified share: it waits
        assert not committee.share_fault_proven(request_id, honest["address"], target)

        _restart(devnet, target_name)  # what it waits for survives a restart; no second claim
        _restart(devnet, later["name"])
        wait_until(lambda: chain.retrievals.delivered(request_id, target), 90, "the target holder's delivery")
        _fetch_same(devnet, request_id, tmp_path / "restored.bin", data)
        again = committee.contract.get_logs("ShareFaultProven", chain.deployment.start_block,
                                            requestId=request_id)
        assert len(again) == 1
    finally:
        _restart(devnet, bad["name"])  # honest again for the next tests
        devnet.run("devnet", "up")


def test_a_denying_and_a_stopped_member_are_named_when_the_fetch_times_out(devnet: Cli, chain: ShardKeyChain,
                                                                           tmp_path: Path) -> None:
    committee = chain.committee
    assert committee is not None
    live, denier, silent = _members(devnet)
    data = os.urandom(100_000)
    dataset, _ = _store(devnet, tmp_path, data)
    _stop(denier)
    _stop(silent)
    try:
        request_id = _approved(devnet, dataset)
        denier_account = load_account_file(devnet.home / "keys" / f"{denier['name']}.key")
        chain.client.wait(committee.submit_denial(denier_account, request_id, NOT_ALLOWED_REQUESTER))
        wait_until(lambda: committee.release_state(request_id, live["address"]) == 1, 60,
                   "the live member's release")
        assert committee.release_counts(request_id) == (1, 1)
        out = tmp_path / "restored.bin"
        refused = devnet.run("fetch", str(request_id), "-o", str(out), "--timeout", "6", check=4)
        message = refused.stderr
        assert f"the KOS committee has not released request {request_id}: 1 of the 2" in message
        assert f"no answer from: {silent['address']};" in message
        assert f"denied by: {denier['address']} (NotAllowedRequester" in message
        assert live["address"] not in message
        assert not out.exists()
    finally:
        devnet.run("devnet", "up")


def test_a_request_two_members_deny_is_denied_and_the_fetch_names_both(devnet: Cli, chain: ShardKeyChain,
                                                                      tmp_path: Path) -> None:
    committee = chain.committee
    _, first, second = _members(devnet)
    dataset, _ = _store(devnet, tmp_path, os.urandom(20_000))
    _stop(first)
    _stop(second)
    try:
        request_id = _approved(devnet, dataset)
        for member in (first, second):  # more than m - t_k = 1 denials: the committee denies
            account = load_account_file(devnet.home / "keys" / f"{member['name']}.key")
            chain.client.wait(committee.submit_denial(account, request_id, NOT_ALLOWED_REQUESTER))
        assert chain.retrievals.request(request_id).status.name == "DENIED"
        out = tmp_path / "restored.bin"
        refused = devnet.run("fetch", str(request_id), "-o", str(out), check=3)
        assert f"request {request_id} was denied: NotAllowedRequester" in refused.stderr
        assert (f"denied by the KOS committee members: {first['address']} (NotAllowedRequester"
                in refused.stderr), refused.stderr
        assert f"{second['address']} (NotAllowedRequester" in refused.stderr
        assert not out.exists()
    finally:
        devnet.run("devnet", "up")


def test_with_one_member_stopped_the_request_is_served(devnet: Cli, chain: ShardKeyChain,
                                                       tmp_path: Path) -> None:
    stopped = _members(devnet)[0]
    data = os.urandom(150_000)
    dataset, _ = _store(devnet, tmp_path, data)
    _stop(stopped)
    try:
        request_id = _approved(devnet, dataset)
        _fetch_same(devnet, request_id, tmp_path / "restored.bin", data)
        assert chain.committee is not None
        assert chain.committee.release_state(request_id, stopped["address"]) == 0
    finally:
        devnet.run("devnet", "up")


def _events(chain: ShardKeyChain) -> dict[str, Any]:
    """The chain's deal events, as the attacker gets them (it never talks to the chain)."""
    committee = chain.committee
    assert committee is not None
    deals = []
    for event in committee.contract.get_logs("DealRegistered", chain.deployment.start_block):
        ds, fe = bytes(event.args["datasetId"]), int(event.args["fragmentEpoch"])
        ce = int(event.args["committeeEpoch"])
        epoch = committee.committee(ce)
        deals.append({"dataset": ds.hex(), "fragment_epoch": fe, "committee_epoch": ce,
                      "holders": list(chain.datasets.fragment_set(ds, fe).holders),
                      "members": list(epoch.members), "threshold": epoch.threshold,
                      "sealed_shares": [bytes(s).hex() for s in event.args["sealedShares"]]})
    return {"chain_id": chain.client.chain_id, "deals": deals}


def _keystore(member: dict[str, Any]) -> str:
    config = tomllib.loads(Path(member["config"]).read_text())
    return f"{config['hpke_keystore']}:{config['passphrase_file']}:{member['address']}"


def _attack(events: Path, folders: list[Path], members: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    argv = [sys.executable, "-m", "tests.e2e.committee_attacker", "--events", str(events),
            "--holders", *map(str, folders)]
    for member in members:
        argv += ["--member", _keystore(member)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode in (0, NOTHING_OPENED), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_an_attacker_with_fewer_than_threshold_member_keys_opens_no_bundle(devnet: Cli, chain: ShardKeyChain,
                                                                           tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    dump = _events(chain)
    assert len(dump["deals"]) >= 4  # the datasets of the tests above, served ones included
    events.write_text(json.dumps(dump))
    folders = []
    for holder in devnet.devnet["holders"]:  # the agents' data folders: bundles and every state file
        copy = tmp_path / "holders" / holder["name"]
        shutil.copytree(Path(holder["data_dir"]) / "store", copy, ignore=shutil.ignore_patterns("incoming"))
        folders.append(copy)
    members = _members(devnet)
    fragment_bundles = {(d["dataset"], h) for d in dump["deals"] for h in d["holders"]}

    code, report = _attack(events, folders, members[:1])
    assert code == NOTHING_OPENED and report["opened"] == []
    tried = {(t["dataset"], t["holder"]) for t in report["tried"] if t["bundles"] >= 1 and t["shares"] == 1}
    assert tried == fragment_bundles  # every fragment holder's bundle was there, and its one share

    code, report = _attack(events, folders, members[1:])  # the control: t_k = 2 members
    assert code == 0
    opened = {(o["dataset"], o["holder"]) for o in report["opened"] if o["from_shares"]}
    assert opened == fragment_bundles
