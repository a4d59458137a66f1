"""A dataset sealed to the single KOS key moves to the KOS committee by ``shardkey redeal``: once
the committee has an epoch, the re-deal's new fragment epoch holds the committee marker and its
wrap keys are dealt to the members (``registerDeal`` after ``redealFragments``), on a real devnet."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account

from shardkey.chain.model import DatasetStatus
from shardkey.cli.context import Env
from shardkey.crypto.committee import (
    VerifiedShare,
    combine_shares,
    commitment_rows,
    commitments_root,
    share_commitment,
)
from shardkey.crypto.committee_envelope import committee_marker, dealt_committee_epoch
from shardkey.crypto.hpke import HpkePrivateKey, committee_share_info

POLICY = "requesters: [requester, owner]\nthreshold: 2\n"


def test_redeal_moves_a_legacy_dataset_to_the_committee(devnet, tmp_path: Path) -> None:
    env = Env(home=devnet.home, network_file=None, passphrase_file=None, max_fee_gwei=None)
    chain = env.chain
    source, policy = tmp_path / "input.bin", tmp_path / "policy.yaml"
    source.write_bytes(os.urandom(40_000))
    policy.write_text(POLICY)
    dataset = devnet.json("store", str(source), "--policy", str(policy), "--shard-size", "65536",
                          "--threshold", "2", "--fragment-holders", "3")["dataset"]
    ds = bytes.fromhex(dataset.removeprefix("0x"))
    first = chain.datasets.fragment_deal(ds, 1, chain.deployment.start_block)
    assert dealt_committee_epoch(first.sealed_wrap_keys) is None  # no committee epoch yet: the KOS key

    members = [Account.create() for _ in range(3)]
    keys = [HpkePrivateKey.generate(os.urandom) for _ in members]
    assert chain.committee is not None
    chain.committee.start_epoch(env.account("admin"), [m.address for m in members],
                                [k.public_key_bytes() for k in keys], 2)

    out = json.loads(devnet.run("redeal", dataset, "--json", timeout=240).stdout)
    assert out["epoch"] == 2
    assert chain.datasets.fragment_epochs(ds) == (2, 2)
    assert chain.datasets.dataset(ds).status == DatasetStatus.ACTIVE
    second = chain.datasets.fragment_deal(ds, 2, chain.deployment.start_block)
    assert list(second.sealed_wrap_keys) == [committee_marker(1)] * len(second.holders)
    record = chain.committee.deal_record(ds, 2, chain.deployment.start_block)
    assert chain.committee.deal(ds, 2) == (1, record.root)
    holders = list(second.holders)
    assert commitments_root(holders, commitment_rows(record.commitments, len(holders), 3)) == record.root
    chain_id = chain.client.chain_id
    for j, holder in enumerate(holders):
        shares = []
        for i, member in enumerate(members):
            share = keys[i].open(record.sealed_share(j, i, 3),
                                 committee_share_info(chain_id, ds, holder, member.address, 1))
            assert share_commitment(chain_id, ds, holder, i, 1, share) == record.commitment(j, i, 3)
            shares.append(VerifiedShare(member.address, i, share))
        assert combine_shares(shares[:2], 2) == combine_shares(shares[1:], 2)
