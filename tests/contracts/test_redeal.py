"""Fragment epochs: re-deal requests, re-dealt fragment sets, and old epochs refused on chain."""

from __future__ import annotations

import pytest
from contract_helpers import (
    PURPOSE_REDEAL,
    PURPOSE_RETRIEVAL,
    REASONS,
    REQ_APPROVED,
    REQ_DENIED,
    policy,
    reverts,
    view_reverts,
)
from eth_utils import keccak


@pytest.fixture
def new_set(kit, spare):
    return [kit.active_holders[0], spare, kit.active_holders[5]]


def _tokens(kit, rid, holders):
    kit.coordinator.issueTokens(rid, list(holders), [b"tok" + bytes([i]) for i in range(len(holders))],
                                sender=kit.kos)


def _released_redeal(kit, ds):
    tx = kit.coordinator.requestRedeal(ds, b"epk-redeal", (kit.admin.address, 0, 0, 0, 0, b"\0" * 32),
                                       "0x" + "00" * 20, b"", sender=kit.owner)
    rid = tx.events.filter(kit.coordinator.RetrievalRequested)[0].requestId
    _tokens(kit, rid, kit.fragment_holders[:3])
    return rid, tx


def _redeal(kit, ds, rid, holders, threshold=2, sender=None):
    n = len(holders)
    return kit.dataset_registry.redealFragments(
        ds, rid, list(holders), threshold, [b"w2-" + bytes([i]) for i in range(n)],
        [keccak(b"r2" + bytes([i])) for i in range(n)], sender=sender or kit.owner)


def test_redeal_request_is_a_retrieval_with_its_purpose(kit, coordinator, ds, outsider):
    rid, tx = _released_redeal(kit, ds)
    names = [e.event_name for e in tx.events]
    assert names == ["RetrievalRequested", "RetrievalApproved", "RedealRequested"]
    assert tx.events[-1] == coordinator.RedealRequested(rid, ds, kit.owner)
    r = coordinator.request(rid)
    assert (r.purpose, r.fragmentEpoch, r.requester, r.status) == (
        PURPOSE_REDEAL, 1, kit.owner.address, REQ_APPROVED)
    plain, _ = kit.request(ds)
    assert coordinator.request(plain).purpose == PURPOSE_RETRIEVAL
    with reverts("RetrievalNotDatasetOwner", ds, outsider):
        coordinator.requestRedeal(ds, b"epk", (outsider.address, 0, 0, 0, 0, b"\0" * 32),
                                  "0x" + "00" * 20, b"", sender=outsider)
    with reverts("RetrievalUnknownDataset", b"\x03" * 32):
        coordinator.requestRedeal(b"\x03" * 32, b"epk", (outsider.address, 0, 0, 0, 0, b"\0" * 32),
                                  "0x" + "00" * 20, b"", sender=kit.owner)


def test_redeal_request_faces_the_same_policy(kit, coordinator, requester):
    ds = kit.register(policy(requesters=[str(requester)]))
    tx = coordinator.requestRedeal(ds, b"epk", (kit.owner.address, 0, 0, 0, 0, b"\0" * 32),
                                   "0x" + "00" * 20, b"", sender=kit.owner)
    rid = tx.events.filter(coordinator.RetrievalRequested)[0].requestId
    assert kit.status(rid) == (REQ_DENIED, REASONS["NotAllowedRequester"])
    with reverts("DatasetRedealNotReleased", rid, 0, 3):
        _redeal(kit, ds, rid, [kit.active_holders[0]], threshold=1)


def test_redeal_registers_a_pending_epoch_that_all_new_holders_activate(kit, dataset_registry, ds, new_set):
    rid, _ = _released_redeal(kit, ds)
    tx = _redeal(kit, ds, rid, new_set)
    n = len(new_set)
    assert tx.events == [dataset_registry.FragmentsRedealt(
        ds, 2, rid, 2, [h.address for h in new_set], [b"w2-" + bytes([i]) for i in range(n)],
        [keccak(b"r2" + bytes([i])) for i in range(n)])]
    assert dataset_registry.fragmentEpochs(ds) == (1, 2)
    assert dataset_registry.redealUsed(rid)
    assert dataset_registry.isFragmentHolder(ds, kit.fragment_holders[0])  # epoch 1 until all confirm
    assert not dataset_registry.isFragmentHolder(ds, new_set[1])
    fs = dataset_registry.fragmentSet(ds, 2)
    assert (fs.epoch, fs.threshold, fs.confirmations, fs.required, fs.current) == (2, 2, 0, 3, False)
    for i, h in enumerate(new_set[:-1]):
        tx = dataset_registry.confirmFragmentCustody(ds, 2, sender=h)
        assert tx.events == [dataset_registry.FragmentCustodyConfirmed(ds, 2, h, i + 1, 3)]
    with reverts("DatasetFragmentCustodyAlreadyConfirmed", ds, 2, new_set[0]):
        dataset_registry.confirmFragmentCustody(ds, 2, sender=new_set[0])
    with reverts("DatasetNotEpochHolder", ds, 2, kit.fragment_holders[0]):
        dataset_registry.confirmFragmentCustody(ds, 2, sender=kit.fragment_holders[0])
    tx = dataset_registry.confirmFragmentCustody(ds, 2, sender=new_set[-1])
    assert tx.events == [dataset_registry.FragmentCustodyConfirmed(ds, 2, new_set[-1], 3, 3),
                         dataset_registry.FragmentEpochActivated(ds, 2)]
    assert dataset_registry.fragmentEpochs(ds) == (2, 2)
    assert dataset_registry.dataset(ds).fragmentEpoch == 2
    assert [dataset_registry.fragmentHolderIndex(ds, h) for h in new_set] == [0, 1, 2]
    # active_holders[1] was in epoch 1 only
    assert not dataset_registry.isFragmentHolder(ds, kit.active_holders[1])
    gone = kit.active_holders[1]
    view_reverts(dataset_registry.fragmentHolderIndex, (ds, gone), "DatasetNotFragmentHolder", ds, gone)
    first = dataset_registry.fragmentSet(ds, 1)
    assert (first.threshold, first.current, list(first.holders)) == (
        3, False, [h.address for h in kit.fragment_holders])
    assert dataset_registry.fragmentSet(ds, 2).current
    with reverts("DatasetFragmentEpochNotPending", ds, 2):
        dataset_registry.confirmFragmentCustody(ds, 2, sender=new_set[0])
    view_reverts(dataset_registry.fragmentSet, (ds, 3), "DatasetUnknownFragmentEpoch", ds, 3)
    view_reverts(dataset_registry.fragmentSet, (ds, 0), "DatasetUnknownFragmentEpoch", ds, 0)


def test_old_epoch_tokens_and_deliveries_are_refused(kit, coordinator, dataset_registry, ds, new_set):
    before_tokens, _ = kit.request(ds)  # approved under epoch 1, no tokens yet
    before_delivery, _ = kit.request(ds)
    _tokens(kit, before_delivery, kit.fragment_holders[:3])  # tokens, no delivery yet
    rid, _ = _released_redeal(kit, ds)
    _redeal(kit, ds, rid, new_set)
    _tokens(kit, before_tokens, kit.fragment_holders[:1])  # pending epoch: epoch 1 still serves
    for h in new_set:
        dataset_registry.confirmFragmentCustody(ds, 2, sender=h)
    assert not coordinator.isOpen(before_tokens)
    with reverts("RetrievalStaleFragmentEpoch", before_tokens, 1, 2):
        _tokens(kit, before_tokens, kit.fragment_holders[1:2])
    with reverts("RetrievalStaleFragmentEpoch", before_delivery, 1, 2):
        coordinator.deliverFragments(before_delivery, b"sealed", sender=kit.fragment_holders[0])
    fresh, _ = kit.request(ds)
    assert coordinator.request(fresh).fragmentEpoch == 2 and coordinator.isOpen(fresh)
    with reverts("RetrievalNotFragmentHolder", fresh, kit.fragment_holders[1]):
        _tokens(kit, fresh, kit.fragment_holders[1:2])
    _tokens(kit, fresh, new_set)
    coordinator.deliverFragments(fresh, b"sealed", sender=new_set[1])


def test_redeal_reverts(kit, coordinator, dataset_registry, ds, gds, new_set, outsider, holders, admin):
    rid, _ = _released_redeal(kit, ds)
    with reverts("DatasetUnauthorizedAccount", ds, outsider):
        _redeal(kit, ds, rid, new_set, sender=outsider)
    plain_tx = coordinator.requestRetrieval(ds, b"epk", (kit.owner.address, 0, 0, 0, 0, b"\0" * 32),
                                            "0x" + "00" * 20, b"", sender=kit.owner)
    plain = plain_tx.events.filter(coordinator.RetrievalRequested)[0].requestId
    _tokens(kit, plain, kit.fragment_holders[:3])
    with reverts("DatasetRedealRequestMismatch", ds, plain):  # not a re-deal request
        _redeal(kit, ds, plain, new_set)
    other, _ = _released_redeal(kit, kit.register())
    with reverts("DatasetRedealRequestMismatch", ds, other):  # another dataset's
        _redeal(kit, ds, other, new_set)
    unreleased_tx = coordinator.requestRedeal(ds, b"epk2", (kit.owner.address, 0, 0, 0, 0, b"\0" * 32),
                                              "0x" + "00" * 20, b"", sender=kit.owner)
    unreleased = unreleased_tx.events.filter(coordinator.RetrievalRequested)[0].requestId
    _tokens(kit, unreleased, kit.fragment_holders[:2])
    with reverts("DatasetRedealNotReleased", unreleased, 2, 3):  # fewer tokens than the threshold
        _redeal(kit, ds, unreleased, new_set)
    with reverts("RetrievalUnknownRequest", 10_000):
        _redeal(kit, ds, 10_000, new_set)
    with reverts("DatasetHolderNotActive", holders[7]):
        _redeal(kit, ds, rid, [new_set[0], holders[7]], threshold=1)
    with reverts("DatasetDuplicateHolder", new_set[0]):
        _redeal(kit, ds, rid, [new_set[0], new_set[0]], threshold=1)
    with reverts("DatasetInvalidThreshold", 4, 3):
        _redeal(kit, ds, rid, new_set, threshold=4)
    with reverts("DatasetInvalidThreshold", 0, 3):
        _redeal(kit, ds, rid, new_set, threshold=0)
    with reverts("DatasetFragmentLengthMismatch", 3, 2, 2):
        dataset_registry.redealFragments(ds, rid, list(new_set), 2, [b"a", b"b"], [b"\0" * 32] * 2,
                                         sender=kit.owner)
    with reverts("DatasetEmptyWrapKey", 1):
        dataset_registry.redealFragments(ds, rid, list(new_set), 2, [b"a", b"", b"c"], [b"\0" * 32] * 3,
                                         sender=kit.owner)
    _redeal(kit, ds, rid, new_set)
    with reverts("DatasetRedealRequestUsed", rid):
        _redeal(kit, ds, rid, new_set)
    revoked = kit.register()
    rrid, _ = _released_redeal(kit, revoked)
    dataset_registry.revokeDataset(revoked, sender=kit.owner)
    with reverts("DatasetInvalidStatus", revoked, 3):
        _redeal(kit, revoked, rrid, new_set)


def test_a_request_of_a_superseded_epoch_cannot_redeal_and_pending_epochs_are_superseded(
        kit, dataset_registry, ds, new_set, spare):
    first, _ = _released_redeal(kit, ds)
    second, _ = _released_redeal(kit, ds)
    _redeal(kit, ds, first, new_set)  # epoch 2, pending
    _redeal(kit, ds, second, [kit.active_holders[1], spare], threshold=1)  # epoch 3, pending
    assert dataset_registry.fragmentEpochs(ds) == (1, 3)
    for h in (kit.active_holders[1], spare):
        dataset_registry.confirmFragmentCustody(ds, 3, sender=h)
    assert dataset_registry.fragmentEpochs(ds) == (3, 3)
    with reverts("DatasetFragmentEpochNotPending", ds, 2):  # superseded before it activated
        dataset_registry.confirmFragmentCustody(ds, 2, sender=new_set[0])
    with reverts("DatasetFragmentEpochNotPending", ds, 4):
        dataset_registry.confirmFragmentCustody(ds, 4, sender=new_set[0])
    stale, _ = kit.request(ds)  # fine: made under epoch 3
    old_tx = kit.coordinator.requestRedeal(ds, b"e", (kit.owner.address, 0, 0, 0, 0, b"\0" * 32),
                                           "0x" + "00" * 20, b"", sender=kit.owner)
    fresh = old_tx.events.filter(kit.coordinator.RetrievalRequested)[0].requestId
    _tokens(kit, fresh, [kit.active_holders[1]])  # threshold of epoch 3 is 1
    assert kit.coordinator.request(stale).fragmentEpoch == 3
    _redeal(kit, ds, fresh, new_set)  # a re-deal request under epoch 3 re-deals
    assert dataset_registry.fragmentEpochs(ds) == (3, 4)


def test_a_registry_without_coordinator_refuses_redeals(project, kit, admin, holder_registry):
    fresh = admin.deploy(project.DatasetRegistry, holder_registry)
    saved = kit.dataset_registry
    kit.dataset_registry = fresh
    try:
        ds = kit.register()
    finally:
        kit.dataset_registry = saved
    assert fresh.retrievalCoordinator() == "0x" + "00" * 20
    with reverts("DatasetNoCoordinator"):
        fresh.redealFragments(ds, 1, [str(kit.active_holders[0])], 1, [b"w"], [b"\0" * 32], sender=kit.owner)
