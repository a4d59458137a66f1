"""Holder exit and failure, and on-chain shard repair placement (docs/CONTRACTS.md, "Repair")."""

from __future__ import annotations

from contract_helpers import (
    DS_PENDING,
    H_ACTIVE,
    H_EXITING,
    H_FAILED,
    H_RETIRED,
    SERVED_TYPES,
    domain,
    merkle_root_and_proofs,
    params,
    reverts,
    shard_hashes,
    sign_typed,
    view_reverts,
)
from eth_utils import keccak

REPAIRER_ROLE = keccak(text="REPAIRER_ROLE")


def test_exit_path_announce_then_complete(holder_registry, active_holders):
    h = active_holders[0]
    tx = holder_registry.announceExit(sender=h)
    assert tx.events == [holder_registry.HolderExiting(h)]
    assert holder_registry.getHolder(h).status == H_EXITING
    assert not holder_registry.isActive(h)
    with reverts("HolderInvalidStatus", h, H_EXITING):
        holder_registry.announceExit(sender=h)
    tx = holder_registry.completeExit(sender=h)
    assert tx.events == [holder_registry.HolderRetired(h, h)]
    assert holder_registry.getHolder(h).status == H_RETIRED
    with reverts("HolderInvalidStatus", h, H_RETIRED):
        holder_registry.completeExit(sender=h)


def test_exit_needs_an_active_then_exiting_holder(holder_registry, active_holders, holders):
    h = active_holders[1]
    with reverts("HolderInvalidStatus", h, H_ACTIVE):
        holder_registry.completeExit(sender=h)
    with reverts("HolderNotRegistered", holders[7]):
        holder_registry.announceExit(sender=holders[7])
    holder_registry.registerHolder(b"k", "e", "r", 0, 0, sender=holders[7])
    with reverts("HolderInvalidStatus", holders[7], 1):
        holder_registry.announceExit(sender=holders[7])


def test_mark_failed_transitions(holder_registry, active_holders, admin, outsider):
    h, e = active_holders[0], active_holders[1]
    with reverts("AccessControlUnauthorizedAccount", outsider, b"\x00" * 32):
        holder_registry.markFailed(h, sender=outsider)
    tx = holder_registry.markFailed(h, sender=admin)
    assert tx.events == [holder_registry.HolderFailed(h, admin)]
    assert holder_registry.getHolder(h).status == H_FAILED and not holder_registry.isActive(h)
    with reverts("HolderInvalidStatus", h, H_FAILED):
        holder_registry.markFailed(h, sender=admin)
    holder_registry.announceExit(sender=e)
    holder_registry.markFailed(e, sender=admin)  # an exiting holder can fail too
    holder_registry.retireHolder(e, sender=admin)  # admin retires a failed holder
    with reverts("HolderInvalidStatus", e, H_RETIRED):
        holder_registry.markFailed(e, sender=admin)
    holder_registry.activateHolder(h, sender=admin)  # a mistaken failure is undone
    assert holder_registry.isActive(h)


def test_admin_retires_an_exiting_holder(holder_registry, active_holders, admin):
    h = active_holders[2]
    holder_registry.announceExit(sender=h)
    holder_registry.retireHolder(h, sender=admin)
    assert holder_registry.getHolder(h).status == H_RETIRED


def test_repairer_role(holder_registry, admin, outsider):
    assert not holder_registry.isRepairer(outsider)
    holder_registry.grantRole(REPAIRER_ROLE, outsider, sender=admin)
    assert holder_registry.isRepairer(outsider)
    assert holder_registry.REPAIRER_ROLE() == REPAIRER_ROLE
    holder_registry.revokeRole(REPAIRER_ROLE, outsider, sender=admin)
    assert not holder_registry.isRepairer(outsider)


def test_held_counts_follow_the_placement_rule(kit, dataset_registry, active_holders):
    ds = kit.register(prm=params(active_holders[:6], kit.fragment_holders))  # 10 shards over 6
    assert [dataset_registry.shardsHeld(ds, h) for h in active_holders[:6]] == [2, 2, 2, 2, 1, 1]
    assert dataset_registry.dataset(ds).fragmentEpoch == 1


def test_an_active_holder_that_kept_its_shard_is_not_repaired(kit, dataset_registry, ds, spare):
    h0 = kit.shard_holders[0]
    with reverts("DatasetShardNotRepairable", ds, 0, h0):
        dataset_registry.assignShard(ds, 0, spare, sender=kit.owner)


def test_failed_holder_shard_is_assigned_and_confirmed(
        kit, dataset_registry, holder_registry, ds, spare, admin):
    h0 = kit.shard_holders[0]
    holder_registry.markFailed(h0, sender=admin)
    tx = dataset_registry.assignShard(ds, 0, spare, sender=kit.owner)
    assert tx.events == [dataset_registry.ShardAssigned(ds, 0, h0, spare, kit.owner)]
    assert dataset_registry.pendingShardHolder(ds, 0) == spare.address
    assert dataset_registry.shardHolderOf(ds, 0) == h0.address  # not until confirmed
    assert not dataset_registry.isShardHolder(ds, spare)
    tx = dataset_registry.confirmShardPlacement(ds, 0, sender=spare)
    assert tx.events == [dataset_registry.ShardRepaired(ds, 0, h0, spare)]
    assert dataset_registry.shardHolderOf(ds, 0) == spare.address
    assert dataset_registry.shardHolderOf(ds, 5) == h0.address  # its other shard stays
    assert dataset_registry.pendingShardHolder(ds, 0) == "0x" + "00" * 20
    assert (dataset_registry.shardsHeld(ds, h0), dataset_registry.shardsHeld(ds, spare)) == (1, 1)
    assert dataset_registry.isShardHolder(ds, spare)
    with reverts("DatasetNotAssignedHolder", ds, 0, spare):
        dataset_registry.confirmShardPlacement(ds, 0, sender=spare)
    # the repaired holder is now the shard's holder: its later loss is repairable again
    holder_registry.announceExit(sender=spare)
    dataset_registry.assignShard(ds, 0, kit.active_holders[5], sender=kit.owner)


def test_assign_reverts(kit, dataset_registry, holder_registry, ds, spare, admin, outsider, holders):
    h0, h1 = kit.shard_holders[0], kit.shard_holders[1]
    pending = kit.register(confirm=False)
    holder_registry.markFailed(h0, sender=admin)
    with reverts("DatasetNotRepairer", ds, outsider):
        dataset_registry.assignShard(ds, 0, spare, sender=outsider)
    with reverts("DatasetShardIndexOutOfRange", ds, 10, 10):
        dataset_registry.assignShard(ds, 10, spare, sender=kit.owner)
    with reverts("DatasetHolderNotActive", holders[7]):
        dataset_registry.assignShard(ds, 0, holders[7], sender=kit.owner)
    with reverts("DatasetHolderInStripe", ds, 0, h1):  # h1 holds shard 1 of stripe 0
        dataset_registry.assignShard(ds, 0, h1, sender=kit.owner)
    with reverts("DatasetUnknown", b"\x01" * 32):
        dataset_registry.assignShard(b"\x01" * 32, 0, spare, sender=kit.owner)
    with reverts("DatasetInvalidStatus", pending, DS_PENDING):
        dataset_registry.assignShard(pending, 0, spare, sender=kit.owner)
    with reverts("DatasetNotAssignedHolder", ds, 0, spare):
        dataset_registry.confirmShardPlacement(ds, 0, sender=spare)


def test_repairer_role_may_assign(kit, dataset_registry, holder_registry, ds, spare, admin, outsider):
    holder_registry.markFailed(kit.shard_holders[2], sender=admin)
    holder_registry.grantRole(REPAIRER_ROLE, outsider, sender=admin)
    tx = dataset_registry.assignShard(ds, 2, spare, sender=outsider)
    assert tx.events == [dataset_registry.ShardAssigned(ds, 2, kit.shard_holders[2], spare, outsider)]


def test_reassigning_is_allowed_but_the_same_holder_twice_is_refused(
        kit, dataset_registry, holder_registry, ds, spare, admin):
    h0, h1, h5 = kit.shard_holders[0], kit.shard_holders[1], kit.active_holders[5]
    holder_registry.markFailed(h0, sender=admin)
    holder_registry.markFailed(h1, sender=admin)
    dataset_registry.assignShard(ds, 0, h5, sender=kit.owner)
    with reverts("DatasetShardAlreadyAssigned", ds, 0, h5):  # an idempotent restart places once
        dataset_registry.assignShard(ds, 0, h5, sender=kit.owner)
    with reverts("DatasetHolderInStripe", ds, 0, h5):  # pending on shard 0 of the same stripe
        dataset_registry.assignShard(ds, 1, h5, sender=kit.owner)
    tx = dataset_registry.assignShard(ds, 0, spare, sender=kit.owner)  # h5 died: move it
    assert tx.events == [dataset_registry.ShardAssigned(ds, 0, h0, spare, kit.owner)]
    with reverts("DatasetNotAssignedHolder", ds, 0, h5):
        dataset_registry.confirmShardPlacement(ds, 0, sender=h5)
    dataset_registry.assignShard(ds, 1, h5, sender=kit.owner)  # h5's stripe claim was released
    with reverts("DatasetHolderInStripe", ds, 0, spare):
        dataset_registry.assignShard(ds, 1, spare, sender=kit.owner)
    dataset_registry.confirmShardPlacement(ds, 0, sender=spare)
    dataset_registry.confirmShardPlacement(ds, 1, sender=h5)
    assert [dataset_registry.shardHolderOf(ds, i) for i in range(5)] == [
        spare.address, h5.address] + [h.address for h in kit.shard_holders[2:5]]


def test_stripe_rule_after_moves(kit, dataset_registry, holder_registry, ds, spare, admin):
    h0, h1 = kit.shard_holders[0], kit.shard_holders[1]
    holder_registry.markFailed(h0, sender=admin)
    dataset_registry.assignShard(ds, 0, spare, sender=kit.owner)
    dataset_registry.confirmShardPlacement(ds, 0, sender=spare)
    holder_registry.announceExit(sender=kit.shard_holders[2])
    with reverts("DatasetHolderInStripe", ds, 0, spare):  # holds repaired shard 0 of stripe 0
        dataset_registry.assignShard(ds, 2, spare, sender=kit.owner)
    dataset_registry.assignShard(ds, 5, spare, sender=kit.owner)  # stripe 1 is another stripe
    # h0 lost shard 0 of stripe 0, so once back it may take another shard of that stripe
    holder_registry.activateHolder(h0, sender=admin)
    holder_registry.markFailed(h1, sender=admin)
    dataset_registry.assignShard(ds, 1, h0, sender=kit.owner)
    dataset_registry.confirmShardPlacement(ds, 1, sender=h0)
    assert dataset_registry.shardsHeld(ds, h0) == 2  # shard 5 (still) and shard 1
    assert dataset_registry.shardHolderOf(ds, 1) == h0.address


def test_a_holder_releases_a_shard_it_lost(kit, dataset_registry, holder_registry, ds, spare):
    h0, h1 = kit.shard_holders[0], kit.shard_holders[1]
    with reverts("DatasetNotShardHolderOf", ds, 0, h1):
        dataset_registry.releaseShard(ds, 0, sender=h1)
    with reverts("DatasetShardIndexOutOfRange", ds, 10, 10):
        dataset_registry.releaseShard(ds, 10, sender=h0)
    assert not dataset_registry.shardReleased(ds, 0)
    tx = dataset_registry.releaseShard(ds, 0, sender=h0)
    assert tx.events == [dataset_registry.ShardReleased(ds, 0, h0)]
    assert dataset_registry.shardReleased(ds, 0)
    with reverts("DatasetShardAlreadyReleased", ds, 0, h0):
        dataset_registry.releaseShard(ds, 0, sender=h0)
    with reverts("DatasetShardNotRepairable", ds, 5, h0):  # only the released shard
        dataset_registry.assignShard(ds, 5, spare, sender=kit.owner)
    dataset_registry.assignShard(ds, 0, spare, sender=kit.owner)
    dataset_registry.confirmShardPlacement(ds, 0, sender=spare)
    assert not dataset_registry.shardReleased(ds, 0)  # the new holder did not release it
    assert holder_registry.isActive(h0)


def test_a_proven_shard_failure_makes_the_shard_repairable(
        kit, dataset_registry, coordinator, holder_registry, spare, requester, admin):
    hashes = shard_hashes(10, b"real")
    root, proofs = merkle_root_and_proofs(hashes)
    ds = kit.register(prm=params(kit.shard_holders, kit.fragment_holders, merkle_root=root), hashes=hashes)
    rid, _ = kit.request(ds)
    idx, h2 = 2, kit.shard_holders[2]

    def served_sig(holder, served):
        return sign_typed(holder.private_key, domain(coordinator, kit.chain_id), SERVED_TYPES,
                          {"requestId": rid, "datasetId": ds, "shardIndex": idx, "ciphertextHash": served})

    with reverts("DatasetShardNotRepairable", ds, idx, h2):
        dataset_registry.assignShard(ds, idx, spare, sender=kit.owner)
    served = keccak(b"garbage")
    coordinator.reportShardFailure(rid, idx, served, served_sig(h2, served), hashes[idx], proofs[idx],
                                   sender=requester)
    assert coordinator.shardFailureProvenAgainst(ds, idx, h2)
    assert not coordinator.shardFailureProvenAgainst(ds, idx + 5, h2)
    dataset_registry.assignShard(ds, idx, spare, sender=kit.owner)
    dataset_registry.confirmShardPlacement(ds, idx, sender=spare)
    # the proof named h2, not the new holder: the new holder keeps the shard until proven itself
    holder_registry.grantRole(REPAIRER_ROLE, admin, sender=admin)
    with reverts("DatasetShardNotRepairable", ds, idx, spare):
        dataset_registry.assignShard(ds, idx, kit.active_holders[5], sender=admin)
    # and a failure proof now takes the repaired holder's receipt, not the rule holder's
    other = keccak(b"other garbage")
    with reverts("RetrievalInvalidReceiptSignature", spare, idx):
        coordinator.reportShardFailure(rid, idx, other, served_sig(h2, other), hashes[idx], proofs[idx],
                                       sender=requester)
    tx = coordinator.reportShardFailure(rid, idx, other, served_sig(spare, other), hashes[idx], proofs[idx],
                                        sender=requester)
    assert tx.events == [coordinator.ShardIntegrityFailureProven(ds, rid, spare, idx, other, hashes[idx])]
    assert coordinator.shardFailureProvenAgainst(ds, idx, spare)


def test_retrieval_coordinator_is_set_once_by_the_admin(dataset_registry, coordinator, admin, outsider):
    assert dataset_registry.retrievalCoordinator() == coordinator.address
    with reverts("DatasetNotAdmin", outsider):
        dataset_registry.setRetrievalCoordinator(outsider, sender=outsider)
    with reverts("DatasetCoordinatorAlreadySet", coordinator):
        dataset_registry.setRetrievalCoordinator(outsider, sender=admin)


def test_views_revert_for_unknown_dataset(dataset_registry):
    unknown = b"\x02" * 32
    view_reverts(dataset_registry.fragmentEpochs, (unknown,), "DatasetUnknown", unknown)
    view_reverts(dataset_registry.shardReleased, (unknown, 0), "DatasetUnknown", unknown)
