"""The repair, exit and re-deal bindings against the real contracts on anvil, and the audit
rows they leave: a failed holder's shard repaired, an exit completed, the keys released by the
committee and re-dealt to a new fragment set whose wrap-key slots (the committee marker) and
roots the bindings read back as the current deal."""

from __future__ import annotations

import os

import pytest
from eth_utils.crypto import keccak

from shardkey.audit.log import collect_events, describe, request_histories
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import DatasetParams, HolderStatus, RequestPurpose
from shardkey.policy.model import Policy

K, P, SHARD_SIZE, STRIPES = 3, 2, 1024, 2


def _register(devchain, holders) -> tuple[bytes, list[bytes]]:
    """A dataset dealt to the committee; its wrap-key slots."""
    chain: ShardKeyChain = devchain.chain
    owner = devchain.account("owner")
    salt = os.urandom(32)
    dataset_id = chain.datasets.compute_dataset_id(owner.address, salt)
    count = STRIPES * (K + P)
    params = DatasetParams(merkle_root=keccak(b"root"), k=K, p=P, shard_size=SHARD_SIZE,
                           plaintext_length=STRIPES * K * SHARD_SIZE, shard_count=count, threshold=2,
                           shard_holders=tuple(h.address for h in holders[:5]),
                           fragment_holders=tuple(h.address for h in holders[1:4]))
    slots, deal = devchain.slots(dataset_id, [os.urandom(32) for _ in range(3)])
    chain.datasets.register(owner, salt, params, Policy(), [keccak(bytes([i])) for i in range(count)],
                            slots, [keccak(b"fr%d" % i) for i in range(3)])
    deal(owner, 1, params.fragment_holders)
    for h in holders[:5]:
        chain.datasets.confirm_custody(h, dataset_id)
    return dataset_id, slots


def test_repair_exit_and_redeal_through_the_bindings(devchain) -> None:
    chain: ShardKeyChain = devchain.chain
    admin, owner = devchain.accounts["admin"], devchain.account("owner")
    holders = devchain.register_holders(7)
    members = devchain.start_committee(3, 2)
    ds, slots = _register(devchain, holders)
    assert chain.datasets.retrieval_coordinator() == chain.deployment.retrieval_coordinator
    assert [chain.datasets.shards_held(ds, h.address) for h in holders[:5]] == [2] * 5

    # a failed holder's shard goes to a repairer-chosen holder, effective on its confirmation
    repairer = devchain.account("repairer")
    chain.holders.grant_repairer_role(admin, repairer.address)
    assert chain.holders.is_repairer(repairer.address)
    chain.holders.mark_failed(admin, holders[0].address)
    assert chain.holders.holder(holders[0].address).status is HolderStatus.FAILED
    chain.datasets.assign_shard(repairer, ds, 5, holders[5].address)
    with pytest.raises(TransactionReverted) as again:
        chain.datasets.assign_shard(repairer, ds, 5, holders[5].address)
    assert again.value.error == "DatasetShardAlreadyAssigned"
    assert chain.datasets.pending_shard_holder(ds, 5) == holders[5].address
    chain.datasets.confirm_shard_placement(holders[5], ds, 5)
    assert chain.datasets.shard_holder_of(ds, 5) == holders[5].address
    assert chain.datasets.pending_shard_holder(ds, 5) is None
    assert chain.datasets.is_shard_holder(ds, holders[5].address)

    # a holder exits: announces, its shards move, it retires itself
    chain.holders.announce_exit(holders[4])
    assert not chain.holders.is_active(holders[4].address)
    chain.datasets.release_shard(holders[2], ds, 2)
    assert chain.datasets.shard_released(ds, 2)
    chain.holders.complete_exit(holders[4])
    assert chain.holders.holder(holders[4].address).status is HolderStatus.RETIRED

    # the keys are re-dealt to a new set under the same policy
    receipt = chain.retrievals.request_redeal(owner, ds, b"ephemeral-key")
    rid = chain.retrievals.request_count()
    assert receipt["status"] == 1
    info = chain.retrievals.request(rid)
    assert (info.purpose, info.fragment_epoch) == (RequestPurpose.REDEAL, 1)
    fs1 = chain.datasets.fragment_set(ds)
    for member in members[:2]:  # the committee's threshold release tokens every fragment holder
        devchain.release(member, rid)
    assert all(chain.retrievals.token_issued(rid, h) for h in fs1.holders)
    new_set = [holders[5].address, holders[6].address, holders[1].address]
    wraps, deal = devchain.slots(ds, [os.urandom(32) for _ in range(3)])
    roots = [keccak(b"r2-%d" % i) for i in range(3)]
    chain.datasets.redeal_fragments(owner, ds, rid, new_set, 2, wraps, roots)
    deal(owner, 2, new_set)
    assert devchain.committee.deal(ds, 2)[0] == devchain.committee.current_epoch()
    assert chain.datasets.fragment_epochs(ds) == (1, 2)
    assert chain.datasets.fragment_deal(ds).sealed_wrap_keys == tuple(slots)
    for h in (holders[5], holders[6], holders[1]):
        chain.datasets.confirm_fragment_custody(h, ds, 2)
    deal = chain.datasets.fragment_deal(ds)
    assert (deal.epoch, deal.threshold, deal.holders, deal.sealed_wrap_keys, deal.fragment_roots,
            deal.redeal_request_id) == (2, 2, tuple(new_set), tuple(wraps), tuple(roots), rid)
    current = chain.datasets.fragment_set(ds)
    assert (current.epoch, current.current, current.holders, current.x(holders[6].address)) == (
        2, True, tuple(new_set), 2)
    assert chain.datasets.dataset(ds).fragment_epoch == 2
    assert chain.datasets.is_fragment_holder(ds, holders[6].address)
    assert not chain.datasets.is_fragment_holder(ds, holders[2].address)
    assert chain.datasets.redeal_used(rid)

    # the audit log reads all of it
    names = {h.address: f"holder-{i + 1}" for i, h in enumerate(holders)} | {repairer.address: "repairer"}
    events = collect_events(chain, ds)
    rows = [describe(e, names) for e in events]
    by_event = {r["event"]: r for r in rows}
    assert by_event["ShardAssigned"]["details"] == (
        "shard 5 assigned from holder-1 to holder-6 (pending its confirmation)")
    assert by_event["ShardAssigned"]["actor"] == "repairer"
    assert by_event["ShardRepaired"]["details"] == "shard 5 repaired: now held by holder-6, was holder-1"
    assert by_event["ShardReleased"]["actor"] == "holder-3"
    assert by_event["FragmentsRedealt"]["details"].startswith("fragment epoch 2 (pending)")
    assert by_event["FragmentEpochActivated"]["details"].startswith("fragment epoch 2 current")
    (history,) = [h for h in request_histories(events, names) if h.request_id == rid]
    assert history.purpose == "re-deal"
    everything = [describe(e, names) for e in collect_events(chain)]
    assert {"HolderFailed", "HolderExiting"} <= {r["event"] for r in everything}
