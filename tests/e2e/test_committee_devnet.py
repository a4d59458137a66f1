"""``shardkey devnet up`` (a KOS committee of 3, threshold 2, by default): member processes with
their own accounts and keys, ``store`` dealing to the committee, members releasing per request,
supervision and ``shardkey kos status``. (The holders' side of a committee retrieval:
tests/e2e/test_committee.py.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.deployment import Deployment
from shardkey.crypto.committee import (
    VerifiedShare,
    combine_shares,
    commitment_rows,
    commitments_root,
    share_commitment,
)
from shardkey.crypto.committee_envelope import committee_marker
from shardkey.crypto.hpke import committee_share_info
from shardkey.keys import load_hpke_keystore

OPEN_POLICY = "requesters: [requester]\nthreshold: 3\n"


def _chain(devnet) -> ShardKeyChain:
    return ShardKeyChain(Deployment.load(Path(devnet.devnet["deployment"])))


def _store(devnet, tmp_path: Path) -> bytes:
    source, policy = tmp_path / "input.bin", tmp_path / "policy.yaml"
    source.write_bytes(os.urandom(50_000))
    policy.write_text(OPEN_POLICY)
    out = devnet.json("store", str(source), "--policy", str(policy), "--shard-size", "65536")
    return bytes.fromhex(out["dataset"].removeprefix("0x"))


def _wait(what: str, check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_devnet_lists_members_with_their_own_keys_and_status_shows_them(devnet) -> None:
    members = devnet.devnet["kos_members"]
    assert [m["name"] for m in members] == ["kos-member-1", "kos-member-2", "kos-member-3"]
    assert devnet.devnet["kos_threshold"] == 2
    assert len({m["address"] for m in members}) == len({m["hpke_keystore"] for m in members}) == 3
    for member in members:
        for key in ("pid", "config", "data_dir", "state_dir", "hpke_keystore", "log"):
            assert member[key], key
    epoch = _chain(devnet).committee.committee()
    assert (epoch.epoch, epoch.threshold) == (1, 2)
    assert list(epoch.members) == [m["address"] for m in members]
    rows = devnet.json("kos", "status")
    assert [(r["name"], r["member_index"], r["hpke_key_matches"], r["running"]) for r in rows] == \
        [(m["name"], i, True, True) for i, m in enumerate(members)]
    assert all(r["last_block_seen"] is not None for r in rows)
    one = devnet.json("kos", "status", "--config", members[1]["config"])
    assert (one["member_index"], one["hpke_key_matches"], one["committee_epoch"], one["threshold"]) == \
        (1, True, 1, 2)


def test_store_deals_to_the_committee_and_each_member_opens_its_shares(devnet, tmp_path: Path) -> None:
    chain = _chain(devnet)
    dataset_id = _store(devnet, tmp_path)
    registration = chain.datasets.registration(dataset_id, chain.deployment.start_block)
    holders = list(registration.params.fragment_holders)
    assert list(registration.sealed_wrap_keys) == [committee_marker(1)] * len(holders)
    record = chain.committee.deal_record(dataset_id, 1, chain.deployment.start_block)
    assert chain.committee.deal(dataset_id, 1) == (1, record.root)
    assert commitments_root(holders, commitment_rows(record.commitments, len(holders), 3)) == record.root
    members = devnet.devnet["kos_members"]
    keys = [load_hpke_keystore(Path(m["hpke_keystore"]), (Path(m["data_dir"]) / "passphrase").read_text())
            for m in members]
    for j, holder in enumerate(holders):
        shares = []
        for i, member in enumerate(members):
            info = committee_share_info(chain.client.chain_id, dataset_id, holder, member["address"], 1)
            share = keys[i].open(record.sealed_share(j, i, 3), info)
            assert share_commitment(chain.client.chain_id, dataset_id, holder, i, 1, share) == \
                record.commitment(j, i, 3)
            shares.append(VerifiedShare(member["address"], i, share))
        assert combine_shares(shares[:2], 2) == combine_shares(shares[1:], 2)  # one wrap key


def test_every_member_releases_a_request_once_even_across_a_restart(devnet, tmp_path: Path) -> None:
    chain = _chain(devnet)
    dataset_id = _store(devnet, tmp_path)
    request = devnet.json("request", "0x" + dataset_id.hex())
    assert request["state"] == "approved"
    rid = int(request["request"])
    _wait("three releases", lambda: chain.committee.release_counts(rid) == (3, 0))
    holders = chain.datasets.fragment_set(dataset_id).holders
    assert chain.retrievals.request(rid).tokens_issued == len(holders)  # the second release issued them
    releases = chain.committee.releases(rid, chain.deployment.start_block)
    assert {r.member for r in releases} == {m["address"] for m in devnet.devnet["kos_members"]}
    assert all(r.released and len(r.sealed_envelopes) == len(holders) for r in releases)

    devnet.run("devnet", "restart", "kos-member-2")
    member = devnet.kos_member("kos-member-2")
    head = chain.client.block_number()

    def caught_up() -> bool:
        seen = devnet.json("kos", "status", "--config", member["config"])["last_block_seen"]
        return seen is not None and seen > head

    _wait("the restarted member to catch up", caught_up)
    assert chain.committee.release_counts(rid) == (3, 0)
    log = Path(member["log"]).read_text()
    assert "release transaction refused" not in log  # it did not even try again
    assert log.count('"shares sent"') == 1
