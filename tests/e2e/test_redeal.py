"""Re-deal end to end on a real devnet (anvil, contracts, KOS and holder processes, HTTP):
an old fragment holder is stopped, the owner re-deals to a new set through the CLI (its
request approved as any other), the next fetch restores byte for byte from the new set,
an old-epoch delivery is refused on chain, a request made under the old epoch is skipped
by the KOS, superseded bundles are deleted and the audit log shows the re-deal."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import RequestPurpose, RequestStatus
from shardkey.cli.context import Env
from shardkey.devnet.process import stop
from tests.support.waiting import wait_until

POLICY = """\
requesters: [requester, owner]
approvals:
  - {group: client, members: [client-rep], required: 1}
threshold: 2
"""


def _bundles(devnet, name: str, dataset: str) -> list[str]:
    folder = Path(devnet.holder(name)["data_dir"]) / "store" / "datasets" / dataset.removeprefix("0x")
    return sorted(str(p.relative_to(folder)) for p in [folder / "bundle", *folder.glob("bundles/*")]
                  if p.is_file())


def _approved_request(devnet, dataset: str) -> str:
    request = devnet.json("request", dataset)
    assert request["state"] == "pending"
    devnet.run("approve", str(request["request"]), "--as", "client-rep", "--yes")
    return str(request["request"])


def test_redeal_moves_fragments_to_a_new_set(devnet, tmp_path: Path) -> None:
    env = Env(home=devnet.home, network_file=None, passphrase_file=None, max_fee_gwei=None)
    chain = env.chain
    data = os.urandom(300_000)
    source, policy = tmp_path / "input.bin", tmp_path / "policy.yaml"
    source.write_bytes(data)
    policy.write_text(POLICY)
    dataset = devnet.json("store", str(source), "--policy", str(policy), "--shard-size", "65536",
                          "--threshold", "2", "--fragment-holders", "3")["dataset"]
    ds = bytes.fromhex(dataset.removeprefix("0x"))
    by_address = {h["address"]: h["name"] for h in devnet.devnet["holders"]}
    old = [by_address[a] for a in chain.datasets.fragment_set(ds).holders]
    spare = [h["name"] for h in devnet.devnet["holders"] if h["name"] not in old]
    assert chain.datasets.fragment_epochs(ds) == (1, 1)

    # old[0] goes away; a request approved while it is down leaves it an undelivered token
    stop(int(devnet.holder(old[0])["pid"]))
    served = int(_approved_request(devnet, dataset))
    wait_until(lambda: chain.retrievals.request(served).deliveries >= 2, 60, "two deliveries of the old set")
    assert chain.retrievals.token_issued(served, devnet.holder(old[0])["address"])
    stale = devnet.json("request", dataset)["request"]  # made under epoch 1, approved after the re-deal

    # a set naming the stopped holder is refused before anything is requested on chain
    count = chain.retrievals.request_count()
    refused = devnet.run("redeal", dataset, "--fragment-holders", ",".join([old[0], *spare[:2]]), check=2)
    assert devnet.holder(old[0])["address"] in refused.stderr and "unreachable" in refused.stderr
    assert chain.retrievals.request_count() == count

    new = [old[1], *spare[:2]]
    proc = subprocess.Popen(
        [sys.executable, "-m", "shardkey", "--home", str(devnet.home), "redeal", dataset,
         "--fragment-holders", ",".join(new), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        rid = wait_until(lambda: next((i for i in range(count + 1, chain.retrievals.request_count() + 1)
                         if chain.retrievals.request(i).purpose == RequestPurpose.REDEAL), None),
                    60, "the re-deal request")
        assert chain.retrievals.request(rid).status == RequestStatus.PENDING  # the policy's approvals
        devnet.run("approve", str(rid), "--as", "client-rep", "--yes")
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert (summary["epoch"], summary["request"], summary["fragment_holders"]) == (2, rid, new)
    assert chain.datasets.fragment_epochs(ds) == (2, 2)
    assert [by_address[a] for a in chain.datasets.fragment_set(ds).holders] == new

    # superseded bundles deleted; the new holders keep only epoch 2's
    wait_until(lambda: _bundles(devnet, old[2], dataset) == [], 30, f"{old[2]} deleting its old bundle")
    for name in new:
        wait_until(lambda n=name: _bundles(devnet, n, dataset) == ["bundles/2"], 30, f"{name}'s bundle")

    # the stopped holder's old token is worthless on chain now
    with pytest.raises(TransactionReverted) as refused:
        chain.retrievals.deliver(env.account(old[0]), served, b"late fragments")
    assert refused.value.error == "RetrievalStaleFragmentEpoch"

    # a request made under epoch 1 is skipped by every KOS member with a named reason, not reverted
    devnet.run("approve", str(stale), "--as", "client-rep", "--yes")
    for member in devnet.devnet["kos_members"]:
        member_log = Path(member["log"])
        wait_until(lambda log=member_log: "stale_fragment_epoch" in log.read_text(), 30,
                   f"{member['name']} skipping the stale request")
    assert chain.retrievals.request(stale).tokens_issued == 0

    # a fetch after it restores byte for byte from the new set (old[0] is still down)
    fresh = _approved_request(devnet, dataset)
    restored = tmp_path / "restored.bin"
    report = devnet.json("fetch", fresh, "-o", str(restored))
    assert hashlib.sha256(restored.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert set(report["fragment_holders"]) <= set(new)

    log = devnet.run("audit", "log", "--dataset", dataset, "--events").stdout
    assert "RedealRequested" in log and "FragmentsRedealt" in log and "FragmentEpochActivated" in log
