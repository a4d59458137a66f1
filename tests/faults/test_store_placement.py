"""``store`` places shards and fragments only at Active holders of the HolderRegistry:
a holder that registered but was never activated (Pending), or was Retired, is never
chosen, even though the registry lists it."""

from __future__ import annotations

import os
from pathlib import Path

from shardkey.chain.model import DatasetStatus, HolderStatus
from shardkey.client.store import StoreOptions, store_file
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.policy.yaml_file import parse_policy_yaml
from tests.faults.conftest import OPEN_POLICY, SHARD_SIZE, Net


def test_store_places_only_at_active_holders(net: Net, tmp_path: Path) -> None:
    chain = net.fresh_chain()
    admin = net.account("admin")
    pending, retired = net.account("outsider"), net.account("attestor")
    for account in (pending, retired):  # endpoints nobody serves: an upload there would fail
        chain.holders.register(account, HpkePrivateKey.generate(os.urandom).public_key_bytes(),
                               "http://127.0.0.1:9", "zz-first-region", 0, 0)
    chain.holders.activate(admin, retired.address)
    chain.holders.retire(admin, retired.address)
    statuses = {a: chain.holders.holder(a).status for a in chain.holders.addresses()}
    assert statuses[pending.address] == HolderStatus.PENDING
    assert statuses[retired.address] == HolderStatus.RETIRED
    active = {a for a, s in statuses.items() if s == HolderStatus.ACTIVE}
    assert len(active) == 5

    source = tmp_path / "in.bin"
    data = os.urandom(20_000)
    source.write_bytes(data)
    policy = parse_policy_yaml(OPEN_POLICY, lambda name: net.address(name)).policy
    result = store_file(source, policy, StoreOptions(shard_size=int(SHARD_SIZE)), net.account("owner"),
                        chain)
    assert set(result.params.shard_holders) == active
    assert set(result.params.fragment_holders) <= active
    assert chain.datasets.dataset(result.dataset_id).status == DatasetStatus.ACTIVE
    out = tmp_path / "restored.bin"
    net.fetch(net.request("0x" + result.dataset_id.hex()), out)
    assert out.read_bytes() == data
