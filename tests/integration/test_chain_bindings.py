"""Bindings against real contracts on anvil: holders register and activate."""

from __future__ import annotations

from shardkey.chain.model import HolderStatus


def test_holders_register_and_activate(devchain) -> None:
    holders = devchain.register_holders(3)
    infos = [devchain.chain.holders.holder(h.address) for h in holders]
    assert [i.status for i in infos] == [HolderStatus.ACTIVE] * 3
    assert infos[0].region == "region-0"
    assert devchain.chain.holders.addresses() == [h.address for h in holders]
    assert devchain.chain.holders.is_active(holders[1].address)
