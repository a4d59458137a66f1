"""Services crashed at chosen points (``SHARDKEY_CRASH_AT``) and restarted from their
persisted state: uploads, custody, deliveries and tokens are neither lost nor repeated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shardkey.chain.model import DatasetStatus
from shardkey.client.store import StoreError, StoreOptions, store_file
from shardkey.policy.yaml_file import parse_policy_yaml
from tests.faults.conftest import OPEN_POLICY, SHARD_SIZE, Net, no_partial_files

CRASH = "SHARDKEY_CRASH_AT"


def _registrations(net: Net) -> int:
    return len(net.events("datasets", "DatasetRegistered"))


def _store_dir(net: Net, name: str) -> Path:
    return Path(net.service(name)["data_dir"]) / "store"


def test_holder_crash_mid_upload_fails_store_cleanly(net: Net, tmp_path: Path) -> None:
    net.restart("holder-1", {CRASH: "holder.after_stage_write"})
    before = _registrations(net)
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(30_000))
    (tmp_path / "p.yaml").write_text(OPEN_POLICY)
    proc = net.run("store", str(source), "--policy", str(tmp_path / "p.yaml"), "--shard-size", SHARD_SIZE,
                   check=None)
    assert proc.returncode != 0
    assert net.address("holder-1") in proc.stderr and "unreachable" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    net.wait_dead("holder-1")
    assert net.crashed_at("holder-1", "holder.after_stage_write")
    assert _registrations(net) == before  # failed before registration: nothing on chain
    net.start("holder-1")
    net.stop("holder-1")  # a running agent keeps writing its cursor (atomic: a .part beside it)
    assert no_partial_files(_store_dir(net, "holder-1")) == []


def test_holder_crash_before_custody_then_restart_store_completes(net: Net, tmp_path: Path) -> None:
    net.restart("holder-2", {CRASH: "holder.before_confirm_custody"})
    source = tmp_path / "in.bin"
    data = os.urandom(30_000)
    source.write_bytes(data)
    (tmp_path / "p.yaml").write_text(OPEN_POLICY)
    env = {k: v for k, v in os.environ.items() if k != CRASH}
    store = subprocess.Popen(
        [sys.executable, "-m", "shardkey", "--home", str(net.home), "store", str(source), "--policy",
         str(tmp_path / "p.yaml"), "--shard-size", SHARD_SIZE, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    net.wait_dead("holder-2", timeout=120)  # crashed with the staged data moved, custody unconfirmed
    assert net.crashed_at("holder-2", "holder.before_confirm_custody")
    net.start("holder-2")  # the watcher redoes DatasetRegistered: custody taken once
    out, err = store.communicate(timeout=180)
    assert store.returncode == 0, err
    dataset = json.loads(out)["dataset"]
    ds = bytes.fromhex(dataset[2:])
    assert net.chain.datasets.dataset(ds).status == DatasetStatus.ACTIVE
    confirmed = [e["args"]["holder"] for e in net.events("datasets", "CustodyConfirmed", datasetId=ds)]
    assert sorted(confirmed) == sorted(set(confirmed)) and len(confirmed) == 5
    net.stop("holder-2")  # a running agent keeps writing its cursor (atomic: a .part beside it)
    assert no_partial_files(_store_dir(net, "holder-2")) == []
    net.start("holder-2")
    rid = net.request(dataset)
    out_file = tmp_path / "restored.bin"
    net.fetch(rid, out_file)
    assert out_file.read_bytes() == data


def test_store_revokes_a_registration_a_holder_never_confirms(net: Net, tmp_path: Path) -> None:
    # Staged (the agent is up) but never confirmed: crash right before confirmCustody.
    net.restart("holder-3", {CRASH: "holder.before_confirm_custody"})
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(20_000))
    policy = parse_policy_yaml(OPEN_POLICY, lambda name: net.address(name)).policy
    options = StoreOptions(shard_size=int(SHARD_SIZE), activation_timeout=8)
    with pytest.raises(StoreError) as failure:
        store_file(source, policy, options, net.account("owner"), net.fresh_chain())
    assert net.address("holder-3") in str(failure.value) and "revoked" in str(failure.value)
    registered = net.events("datasets", "DatasetRegistered")[-1]
    ds = bytes(registered["args"]["datasetId"])
    assert net.chain.datasets.dataset(ds).status == DatasetStatus.REVOKED  # not left Pending
    net.wait_dead("holder-3")
    net.start("holder-3")  # sees the registration again, finds it revoked: nothing pending
    net.wait_for("holder-3 sees the revocation",
                 lambda: "dataset is not pending; custody not confirmed" in net.log("holder-3"))
    pending = _store_dir(net, "holder-3") / "pending_custody.json"
    assert not pending.exists() or ds.hex() not in pending.read_text()
    assert not net.chain.datasets.custody_confirmed(ds, net.address("holder-3"))
    net.stop("holder-3")  # a running agent keeps writing its cursor (atomic: a .part beside it)
    assert no_partial_files(_store_dir(net, "holder-3")) == []


def test_holder_crash_before_and_after_delivery_tx(net: Net, tmp_path: Path) -> None:
    data = os.urandom(20_000)
    dataset = net.store(tmp_path, data)
    net.restart("holder-1", {CRASH: "holder.before_deliver"})
    net.restart("holder-2", {CRASH: "holder.after_deliver_tx"})
    rid = net.request(dataset)
    net.wait_dead("holder-1")
    net.wait_dead("holder-2")
    assert net.crashed_at("holder-1", "holder.before_deliver")
    assert net.crashed_at("holder-2", "holder.after_deliver_tx")
    delivered = net.deliveries(rid)
    assert "holder-1" not in delivered and delivered.get("holder-2") == 1
    net.start("holder-1")
    net.start("holder-2")
    net.wait_for("every delivery", lambda: len(net.deliveries(rid)) == 5)
    out = tmp_path / "restored.bin"
    net.fetch(rid, out)
    assert out.read_bytes() == data
    time.sleep(1)
    assert net.deliveries(rid) == {f"holder-{i}": 1 for i in range(1, 6)}


def test_kos_members_crash_before_and_after_their_release_tx(net: Net, tmp_path: Path) -> None:
    data = os.urandom(20_000)
    dataset = net.store(tmp_path, data)
    for name in ("kos-member-1", "kos-member-2"):
        net.restart(name, {CRASH: "kos.before_issue"})
    rid = net.request(dataset)
    net.wait_dead("kos-member-1")
    net.wait_dead("kos-member-2")
    net.wait_for("kos-member-3's release", lambda: net.releases(rid) == {"kos-member-3": 1})
    assert net.tokens(rid) == {}  # approved, 1 of the 2 releases needed: no token yet
    net.start("kos-member-1", {CRASH: "kos.after_issue_tx"})  # the request is in its pending set
    net.wait_dead("kos-member-1")
    assert net.crashed_at("kos-member-1", "kos.after_issue_tx")
    assert net.tokens(rid) == {f"holder-{i}": 1 for i in range(1, 6)}  # its release was the 2nd
    # back with the request pending: member 1 finds its release on chain and drops it; member 2
    # releases too (every member releases while the request is open, so a holder that proves a
    # wrong share has another one to combine)
    for name in ("kos-member-1", "kos-member-2"):
        net.start(name)
    out = tmp_path / "restored.bin"
    net.fetch(rid, out)
    assert out.read_bytes() == data
    net.wait_for("kos-member-2's release", lambda: "kos-member-2" in net.releases(rid))
    time.sleep(1)
    assert net.releases(rid) == {f"kos-member-{i}": 1 for i in (1, 2, 3)}  # none twice
    assert net.tokens(rid) == {f"holder-{i}": 1 for i in range(1, 6)}
    assert net.deliveries(rid) == {f"holder-{i}": 1 for i in range(1, 6)}


def test_every_service_resumes_from_its_cursor_after_a_crash_between_handler_and_cursor(
        net: Net, tmp_path: Path) -> None:
    data = os.urandom(20_000)
    dataset = net.store(tmp_path, data)
    for name in ("kos-member-1", "kos-member-2", "holder-4", "holder-5"):
        net.restart(name, {CRASH: "watcher.after_handler"})
    rid = net.request(dataset)
    # Members: die after handling RetrievalRequested, before saving the cursor; the holders die
    # after delivering (TokenIssued handled), before saving theirs.
    for name in ("kos-member-1", "kos-member-2"):
        net.wait_dead(name)
        net.start(name)
    net.wait_dead("holder-4")
    net.wait_dead("holder-5")
    assert all(net.crashed_at(n, "watcher.after_handler")
               for n in ("kos-member-1", "kos-member-2", "holder-4", "holder-5"))
    net.start("holder-4")
    net.start("holder-5")
    net.wait_for("every delivery", lambda: len(net.deliveries(rid)) == 5)
    out = tmp_path / "restored.bin"
    net.fetch(rid, out)
    assert out.read_bytes() == data
    time.sleep(1)
    assert net.tokens(rid) == {f"holder-{i}": 1 for i in range(1, 6)}
    assert net.deliveries(rid) == {f"holder-{i}": 1 for i in range(1, 6)}
