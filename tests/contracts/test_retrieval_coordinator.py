import pytest
from contract_helpers import (
    APPROVAL_TYPES,
    ATTESTATION_TYPES,
    FRAGMENT_MISSING,
    FRAGMENT_WRONG,
    H_ACTIVE,
    H_FAILED,
    REASONS,
    RECEIPT_TYPES,
    REQ_APPROVED,
    REQ_COMPLETED,
    REQ_DENIED,
    REQ_PENDING,
    SERVED_TYPES,
    ZERO,
    ZERO32,
    approval_message,
    attestation,
    domain,
    merkle_root_and_proofs,
    params,
    policy,
    reverts,
    shard_hashes,
    sign_digest,
    sign_typed,
    typed_digest,
    view_reverts,
)
from eth_utils import keccak

ZERO_ROLE = b"\x00" * 32


@pytest.fixture
def approved(kit, ds):
    rid, _ = kit.request(ds)
    return rid


def test_open_policy_is_approved_at_once(kit, coordinator, ds, requester):
    rid, tx = kit.request(ds, key=b"ephemeral")
    assert rid == 1 and coordinator.requestCount() == 1
    req_ev, appr_ev = tx.events
    assert (req_ev.requestId, req_ev.datasetId, req_ev.requester, req_ev.policyVersion) == (
        1, ds, requester.address, 1)
    assert (req_ev.ephemeralKey, req_ev.attestor) == (b"ephemeral", ZERO)
    assert list(req_ev.attestation) == [ZERO, 0, 0, 0, 0, ZERO32]
    assert appr_ev == coordinator.RetrievalApproved(1, ds, tx.timestamp, tx.timestamp + 3600)
    r = coordinator.request(rid)
    assert (r.datasetId, r.requester, r.policyVersion, r.status, r.denialReason) == (
        ds, requester.address, 1, REQ_APPROVED, 0)
    assert (r.requestedAt, r.approvedAt, r.deadline) == (tx.timestamp, tx.timestamp, tx.timestamp + 3600)
    # only the key's hash is stored; the key itself is in the event
    assert (r.tokensIssued, r.deliveries, bytes(r.ephemeralKeyHash)) == (0, 0, keccak(b"ephemeral"))
    assert coordinator.isOpen(rid)
    assert coordinator.approvalCounts(rid) == []
    rid2, _ = kit.request(ds)
    assert rid2 == 2


def test_request_reverts_on_malformed_input(kit, coordinator, ds):
    with reverts("RetrievalUnknownDataset", keccak(b"nope")):
        kit.request(keccak(b"nope"))
    with reverts("RetrievalEmptyEphemeralKey"):
        kit.request(ds, key=b"")
    view_reverts(coordinator.checkPolicy, (keccak(b"nope"), ZERO, (ZERO, 0, 0, 0, 0, ZERO32), ZERO, b""),
                 "RetrievalUnknownDataset", keccak(b"nope"))
    view_reverts(coordinator.request, (1,), "RetrievalUnknownRequest", 1)
    view_reverts(coordinator.approvalCounts, (1,), "RetrievalUnknownRequest", 1)
    assert not coordinator.isOpen(1)


def test_request_uses_current_policy_version(kit, coordinator, ds):
    kit.dataset_registry.updatePolicy(ds, policy(approvalWindow=5), sender=kit.owner)
    rid, tx = kit.request(ds)
    r = coordinator.request(rid)
    assert r.policyVersion == 2 and r.deadline == tx.timestamp + 5


# ----- approvals


def test_approval_groups(kit, coordinator, gds, approvers, requester):
    a0, a1, a2 = approvers
    rid, tx = kit.request(gds)
    assert len(tx.events) == 1 and kit.status(rid) == (REQ_PENDING, 0)
    assert coordinator.approvalCounts(rid) == [0, 0]
    assert not coordinator.isOpen(rid)
    tx = coordinator.approve(kit.subject(rid), sender=a0)
    assert tx.events == [coordinator.ApprovalRecorded(rid, a0, False, 0)]
    assert coordinator.approvalCounts(rid) == [1, 0] and coordinator.hasApproved(rid, a0)
    assert not coordinator.hasApproved(rid, a1)
    tx = coordinator.approve(kit.subject(rid), sender=a1)  # legal complete, ops still missing
    assert tx.events == [coordinator.ApprovalRecorded(rid, a1, False, 0)]
    assert coordinator.approvalCounts(rid) == [2, 0] and kit.status(rid) == (REQ_PENDING, 0)
    tx = coordinator.approve(kit.subject(rid), sender=a2)
    assert tx.events == [coordinator.ApprovalRecorded(rid, a2, False, 0),
                         coordinator.RetrievalApproved(rid, gds, tx.timestamp, tx.timestamp + 600)]
    assert coordinator.approvalCounts(rid) == [2, 1]
    assert kit.status(rid) == (REQ_APPROVED, 0) and coordinator.isOpen(rid)
    with reverts("RetrievalInvalidStatus", rid, REQ_APPROVED):
        coordinator.approve(kit.subject(rid), sender=a0)


def test_approve_reverts(kit, coordinator, approvers, requester, outsider):
    a0, a1, _ = approvers
    ds_id = kit.register(policy(groups=[("g", [str(requester), str(a0), str(a1)], 2)]))
    rid, _ = kit.request(ds_id)
    with reverts("RetrievalUnknownRequest", 99):
        coordinator.approve(kit.subject(99), sender=a0)
    subject = kit.subject(rid)
    with reverts("RetrievalSelfApproval", rid, requester):
        coordinator.approve(subject, sender=requester)
    with reverts("RetrievalNotApprover", rid, outsider):
        coordinator.approve(subject, sender=outsider)
    coordinator.approve(subject, sender=a0)
    with reverts("RetrievalAlreadyApproved", rid, a0):
        coordinator.approve(subject, sender=a0)
    coordinator.denyRequest(rid, REASONS["KosPolicyMismatch"], sender=kit.kos)
    with reverts("RetrievalInvalidStatus", rid, REQ_DENIED):
        coordinator.approve(subject, sender=a1)


def test_approval_with_another_requests_fields_is_refused(kit, coordinator, gds, approvers, outsider):
    """An approval names dataset, requester and ephemeral key hash as well as the id: made
    for request N, it cannot count for a different request N (as after a reorg)."""
    a0, _a1, _ = approvers
    rid, _ = kit.request(gds, key=b"bob's key")
    other_ds = kit.register(policy(groups=[("g", [str(a0)], 1)]))
    mallory, _ = kit.request(gds, sender=outsider, key=b"mallory's key")
    stored = kit.subject(rid)
    _, ds_id, requester, key_hash = stored
    for wrong in ((rid, other_ds, requester, key_hash),              # another dataset
                  (rid, ds_id, str(outsider), key_hash),             # another requester
                  (rid, ds_id, requester, keccak(b"mallory's key")),  # another ephemeral key
                  (rid, *kit.subject(mallory)[1:])):                  # all of another request
        with reverts("RetrievalApprovalMismatch", rid, ds_id, requester, key_hash):
            coordinator.approve(wrong, sender=a0)
    assert not coordinator.hasApproved(rid, a0) and coordinator.approvalCounts(rid) == [0, 0]
    coordinator.approve(stored, sender=a0)
    assert coordinator.hasApproved(rid, a0)
    assert tuple(coordinator.approvalSubject(rid)) == stored
    view_reverts(coordinator.approvalSubject, (10_000,), "RetrievalUnknownRequest", 10_000)


def test_approval_made_before_a_reorg_does_not_approve_the_request_that_reuses_its_id(
        kit, chain, coordinator, gds, approvers, outsider):
    a0, _a1, _ = approvers
    snap = chain.snapshot()
    rid, _ = kit.request(gds, key=b"bob's key")
    bobs = kit.subject(rid)                       # what the approver saw and approves
    chain.restore(snap)                           # the request's block is reorged away
    mallory, _ = kit.request(gds, sender=outsider, key=b"mallory's key")
    assert mallory == rid                         # sequential ids: the same id, another request
    with reverts("RetrievalApprovalMismatch", *kit.subject(rid)):
        coordinator.approve(bobs, sender=a0)
    deadline = kit.now + 1000
    sig = _sign_approval(kit, a0.private_key, bobs, a0, 41, deadline)
    with reverts("RetrievalApprovalMismatch", *kit.subject(rid)):
        coordinator.approveBySig(bobs, a0, 41, deadline, sig, sender=outsider)
    with reverts("RetrievalInvalidSignature", a0):  # the signature does not fit Mallory's fields
        coordinator.approveBySig(kit.subject(rid), a0, 41, deadline, sig, sender=outsider)
    assert not coordinator.hasApproved(rid, a0) and not coordinator.nonceUsed(a0, 41)


def _sign_approval(kit, key, subject, approver, nonce, deadline):
    return sign_typed(key, domain(kit.coordinator, kit.chain_id), APPROVAL_TYPES,
                      approval_message(subject, approver, nonce, deadline))


def test_approve_by_sig_eoa(kit, coordinator, gds, approvers, outsider, requester):
    a0, a1, _ = approvers
    rid, _ = kit.request(gds)
    s = kit.subject(rid)
    deadline = kit.now + 1000
    dom = domain(coordinator, kit.chain_id)
    msg = approval_message(s, a0, 7, deadline)
    assert coordinator.hashApproval(s, a0, 7, deadline) == typed_digest(dom, APPROVAL_TYPES, msg)
    sig = _sign_approval(kit, a0.private_key, s, a0, 7, deadline)
    tx = coordinator.approveBySig(s, a0, 7, deadline, sig, sender=outsider)  # relayed
    assert tx.events == [coordinator.ApprovalRecorded(rid, a0, True, 7)]
    assert coordinator.nonceUsed(a0, 7) and not coordinator.nonceUsed(a0, 8)
    # replay of the same signature
    with reverts("RetrievalNonceUsed", a0, 7):
        coordinator.approveBySig(s, a0, 7, deadline, sig, sender=outsider)
    # a signature by someone else, or for other fields, does not verify
    bad = _sign_approval(kit, outsider.private_key, s, a1, 1, deadline)
    with reverts("RetrievalInvalidSignature", a1):
        coordinator.approveBySig(s, a1, 1, deadline, bad, sender=outsider)
    other_rid = _sign_approval(kit, a1.private_key, (rid + 1, *s[1:]), a1, 1, deadline)
    with reverts("RetrievalInvalidSignature", a1):
        coordinator.approveBySig(s, a1, 1, deadline, other_rid, sender=outsider)
    # signed for another requester's request with this id: refused whichever subject is relayed
    for_other = (rid, s[1], str(outsider), s[3])
    sig_other = _sign_approval(kit, a1.private_key, for_other, a1, 1, deadline)
    with reverts("RetrievalInvalidSignature", a1):
        coordinator.approveBySig(s, a1, 1, deadline, sig_other, sender=outsider)
    with reverts("RetrievalApprovalMismatch", *s):
        coordinator.approveBySig(for_other, a1, 1, deadline, sig_other, sender=outsider)
    with reverts("RetrievalSignatureExpired", kit.now - 1):
        coordinator.approveBySig(s, a1, 1, kit.now - 1,
                                 _sign_approval(kit, a1.private_key, s, a1, 1, kit.now - 1),
                                 sender=outsider)
    # the requester's own signature is rejected too
    own = _sign_approval(kit, requester.private_key, s, requester, 1, deadline)
    with reverts("RetrievalSelfApproval", rid, requester):
        coordinator.approveBySig(s, requester, 1, deadline, own, sender=outsider)
    good = _sign_approval(kit, a1.private_key, s, a1, 1, deadline)
    tx = coordinator.approveBySig(s, a1, 1, deadline, good, sender=outsider)
    assert tx.events == [coordinator.ApprovalRecorded(rid, a1, True, 1)]
    assert coordinator.approvalCounts(rid) == [2, 0]  # legal complete; ops (a2 or wallet) missing


def test_domain_separator(coordinator, chain):
    from eth_abi import encode

    expected = keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                     "address verifyingContract)"),
         keccak(text="ShardKey"), keccak(text="1"), chain.chain_id, coordinator.address]))
    assert coordinator.domainSeparator() == expected
    assert coordinator.APPROVAL_TYPEHASH() == keccak(
        text="Approval(uint256 requestId,bytes32 datasetId,address requester,bytes32 ephemeralKeyHash,"
             "address approver,uint256 nonce,uint256 deadline)")
    assert coordinator.SHARD_RECEIPT_TYPEHASH() == keccak(
        text="ShardReceipt(bytes32 datasetId,uint32 shardIndex,bytes32 ciphertextHash)")
    assert coordinator.SHARD_SERVED_TYPEHASH() == keccak(
        text="ShardServed(uint256 requestId,bytes32 datasetId,uint32 shardIndex,bytes32 ciphertextHash)")
    assert coordinator.LOCATION_ATTESTATION_TYPEHASH() == keccak(
        text="LocationAttestation(address requester,int32 latE6,int32 lonE6,uint32 accuracyM,"
             "uint64 issuedAt,bytes32 nonce)")


def test_approve_by_sig_eip1271(kit, coordinator, gds, approvers, wallet, outsider):
    a0, _a1, wallet_owner = approvers
    rid, _ = kit.request(gds)
    s = kit.subject(rid)
    deadline = kit.now + 1000
    digest = coordinator.hashApproval(s, wallet, 3, deadline)
    with reverts("RetrievalInvalidSignature", wallet):
        coordinator.approveBySig(s, wallet, 3, deadline, sign_digest(a0.private_key, digest),
                                 sender=outsider)
    sig = sign_digest(wallet_owner.private_key, digest)
    tx = coordinator.approveBySig(s, wallet, 3, deadline, sig, sender=outsider)
    assert tx.events == [coordinator.ApprovalRecorded(rid, wallet, True, 3)]
    assert coordinator.approvalCounts(rid) == [0, 1]
    with reverts("RetrievalNonceUsed", wallet, 3):
        coordinator.approveBySig(s, wallet, 3, deadline, sig, sender=outsider)


def test_contract_wallet_approves_by_transaction(kit, coordinator, gds, approvers, wallet):
    a0, _a1, wallet_owner = approvers
    rid, _ = kit.request(gds)
    data = coordinator.approve.encode_input(kit.subject(rid))
    wallet.execute(coordinator, data, sender=wallet_owner)
    assert coordinator.hasApproved(rid, wallet)
    with reverts("TestWalletUnauthorized", a0):
        wallet.execute(coordinator, data, sender=a0)


# ----- tokens, deliveries, completion


def test_issue_tokens_and_deliver(kit, coordinator, approved, kos, ds):
    fh = kit.fragment_holders
    tx = coordinator.issueTokens(approved, fh[:2], [b"t0", b"t1"], sender=kos)
    assert tx.events == [coordinator.TokenIssued(approved, fh[0], b"t0"),
                         coordinator.TokenIssued(approved, fh[1], b"t1")]
    assert coordinator.tokenIssued(approved, fh[0]) and not coordinator.tokenIssued(approved, fh[2])
    with reverts("RetrievalTokenAlreadyIssued", approved, fh[1]):
        coordinator.issueTokens(approved, [fh[2], fh[1]], [b"t2", b"t1"], sender=kos)
    with reverts("RetrievalTokenAlreadyIssued", approved, fh[2]):
        coordinator.issueTokens(approved, [fh[2], fh[2]], [b"t2", b"t2"], sender=kos)
    coordinator.issueTokens(approved, fh[2:], [b"t2", b"t3", b"t4"], sender=kos)
    assert coordinator.request(approved).tokensIssued == 5

    tx = coordinator.deliverFragments(approved, b"sealed", sender=fh[0])
    assert tx.events == [coordinator.FragmentsDelivered(approved, fh[0], b"sealed")]
    assert coordinator.delivered(approved, fh[0]) and not coordinator.delivered(approved, fh[1])
    with reverts("RetrievalAlreadyDelivered", approved, fh[0]):
        coordinator.deliverFragments(approved, b"again", sender=fh[0])
    with reverts("RetrievalEmptyPayload", approved, fh[1]):
        coordinator.deliverFragments(approved, b"", sender=fh[1])
    coordinator.deliverFragments(approved, b"s1", sender=fh[1])
    assert coordinator.request(approved).deliveries == 2


def test_issue_tokens_reverts(kit, coordinator, approved, kos, outsider, gds):
    fh = kit.fragment_holders
    with reverts("AccessControlUnauthorizedAccount", outsider, coordinator.KOS_ROLE()):
        coordinator.issueTokens(approved, [fh[0]], [b"t"], sender=outsider)
    with reverts("RetrievalUnknownRequest", 42):
        coordinator.issueTokens(42, [fh[0]], [b"t"], sender=kos)
    with reverts("RetrievalInvalidBatch", 2, 1):
        coordinator.issueTokens(approved, fh[:2], [b"t"], sender=kos)
    with reverts("RetrievalInvalidBatch", 0, 0):
        coordinator.issueTokens(approved, [], [], sender=kos)
    with reverts("RetrievalNotFragmentHolder", approved, kit.shard_holders[0]):
        coordinator.issueTokens(approved, [kit.shard_holders[0]], [b"t"], sender=kos)
    with reverts("RetrievalEmptyPayload", approved, fh[0]):
        coordinator.issueTokens(approved, [fh[0]], [b""], sender=kos)
    pending, _ = kit.request(gds)
    with reverts("RetrievalInvalidStatus", pending, REQ_PENDING):
        coordinator.issueTokens(pending, [fh[0]], [b"t"], sender=kos)


def test_deliver_reverts(kit, coordinator, approved, kos, outsider, gds):
    fh = kit.fragment_holders
    with reverts("RetrievalNoToken", approved, fh[0]):
        coordinator.deliverFragments(approved, b"s", sender=fh[0])
    with reverts("RetrievalNoToken", approved, outsider):
        coordinator.deliverFragments(approved, b"s", sender=outsider)
    pending, _ = kit.request(gds)
    with reverts("RetrievalInvalidStatus", pending, REQ_PENDING):
        coordinator.deliverFragments(pending, b"s", sender=fh[0])


def test_window_expiry_is_enforced(kit, coordinator, approved, kos, chain):
    """Reason 16 (ApprovalExpired) lives off chain; on chain the window is a hard revert."""
    fh = kit.fragment_holders
    deadline = coordinator.request(approved).deadline
    coordinator.issueTokens(approved, [fh[0]], [b"t"], sender=kos)
    kit.at(deadline)  # the deadline itself is still open
    coordinator.issueTokens(approved, [fh[1]], [b"t"], sender=kos)
    assert coordinator.isOpen(approved)
    kit.at(deadline + 1)
    with reverts("RetrievalApprovalExpired", approved, deadline):
        coordinator.issueTokens(approved, [fh[2]], [b"t"], sender=kos)
    kit.at(deadline + 1)
    with reverts("RetrievalApprovalExpired", approved, deadline):
        coordinator.deliverFragments(approved, b"s", sender=fh[0])
    chain.mine(timestamp=deadline + 2)
    assert not coordinator.isOpen(approved)
    # completion does not depend on the window
    coordinator.completeRetrieval(approved, sender=kit.requester)


def test_revocation_closes_requests(kit, coordinator, approved, kos, ds):
    fh = kit.fragment_holders
    coordinator.issueTokens(approved, [fh[0]], [b"t"], sender=kos)
    kit.dataset_registry.revokeDataset(ds, sender=kit.owner)
    assert not coordinator.isOpen(approved)
    with reverts("RetrievalDatasetRevoked", approved, ds):
        coordinator.issueTokens(approved, [fh[1]], [b"t"], sender=kos)
    with reverts("RetrievalDatasetRevoked", approved, ds):
        coordinator.deliverFragments(approved, b"s", sender=fh[0])


def test_retired_holder_still_delivers(kit, coordinator, approved, kos, admin):
    h = kit.fragment_holders[0]
    kit.holder_registry.retireHolder(h, sender=admin)
    coordinator.issueTokens(approved, [h], [b"t"], sender=kos)
    coordinator.deliverFragments(approved, b"s", sender=h)
    assert coordinator.delivered(approved, h)


def test_complete(kit, coordinator, approved, outsider, gds, ds, requester):
    with reverts("RetrievalNotRequester", approved, outsider):
        coordinator.completeRetrieval(approved, sender=outsider)
    tx = coordinator.completeRetrieval(approved, sender=requester)
    assert tx.events == [coordinator.RetrievalCompleted(approved, ds, requester)]
    assert kit.status(approved) == (REQ_COMPLETED, 0)
    assert not coordinator.isOpen(approved)
    with reverts("RetrievalInvalidStatus", approved, REQ_COMPLETED):
        coordinator.completeRetrieval(approved, sender=requester)
    pending, _ = kit.request(gds)
    with reverts("RetrievalInvalidStatus", pending, REQ_PENDING):
        coordinator.completeRetrieval(pending, sender=requester)
    with reverts("RetrievalUnknownRequest", 77):
        coordinator.completeRetrieval(77, sender=requester)


def test_deny_request(kit, coordinator, approved, kos, outsider, ds, gds):
    with reverts("AccessControlUnauthorizedAccount", outsider, coordinator.KOS_ROLE()):
        coordinator.denyRequest(approved, 17, sender=outsider)
    for bad in (0, 20, 255):
        with reverts("RetrievalInvalidDenialReason", bad):
            coordinator.denyRequest(approved, bad, sender=kos)
    with reverts("RetrievalUnknownRequest", 99):
        coordinator.denyRequest(99, 17, sender=kos)
    tx = coordinator.denyRequest(approved, REASONS["KosWrapKeyInvalid"], sender=kos)
    assert tx.events == [coordinator.RetrievalDenied(approved, ds, 18, kos)]
    assert kit.status(approved) == (REQ_DENIED, 18)
    assert not coordinator.isOpen(approved)
    with reverts("RetrievalInvalidStatus", approved, REQ_DENIED):
        coordinator.denyRequest(approved, 17, sender=kos)
    pending, _ = kit.request(gds)
    coordinator.denyRequest(pending, REASONS["ApprovalExpired"], sender=kos)
    assert kit.status(pending) == (REQ_DENIED, 16)


def test_roles(coordinator, admin, kos, outsider, dataset_registry, holder_registry):
    coordinator_registries = (dataset_registry, holder_registry)
    role = coordinator.KOS_ROLE()
    assert role == keccak(text="KOS_ROLE")
    assert coordinator.hasRole(role, kos) and coordinator.hasRole(ZERO_ROLE, admin)
    with reverts("AccessControlUnauthorizedAccount", outsider, ZERO_ROLE):
        coordinator.grantRole(role, outsider, sender=outsider)
    assert list(coordinator.registries()) == [kit_addr.address for kit_addr in (
        coordinator_registries[0], coordinator_registries[1])]


# ----- misbehaviour reports


@pytest.fixture
def merkle_ds(kit):
    hashes = shard_hashes(10, b"real")
    root, proofs = merkle_root_and_proofs(hashes)
    ds_id = kit.register(prm=params(kit.shard_holders, kit.fragment_holders, merkle_root=root),
                         hashes=hashes)
    rid, _ = kit.request(ds_id)
    return ds_id, rid, hashes, proofs


def _served_sig(kit, holder, rid, ds_id, idx, served):
    return sign_typed(holder.private_key, domain(kit.coordinator, kit.chain_id), SERVED_TYPES,
                      {"requestId": rid, "datasetId": ds_id, "shardIndex": idx, "ciphertextHash": served})


def _custody_sig(kit, holder, ds_id, idx, served):
    return sign_typed(holder.private_key, domain(kit.coordinator, kit.chain_id), RECEIPT_TYPES,
                      {"datasetId": ds_id, "shardIndex": idx, "ciphertextHash": served})


def test_report_shard_failure(kit, coordinator, merkle_ds, requester):
    ds_id, rid, hashes, proofs = merkle_ds
    idx = 7
    holder = kit.shard_holders[idx % 5]
    served = keccak(b"garbage")
    dom = domain(coordinator, kit.chain_id)
    msg = {"requestId": rid, "datasetId": ds_id, "shardIndex": idx, "ciphertextHash": served}
    assert coordinator.hashShardServed(rid, ds_id, idx, served) == typed_digest(dom, SERVED_TYPES, msg)
    custody = {"datasetId": ds_id, "shardIndex": idx, "ciphertextHash": served}
    assert coordinator.hashShardReceipt(ds_id, idx, served) == typed_digest(dom, RECEIPT_TYPES, custody)
    sig = _served_sig(kit, holder, rid, ds_id, idx, served)
    assert not coordinator.shardFailureProven(ds_id, idx, served)
    tx = coordinator.reportShardFailure(rid, idx, served, sig, hashes[idx], proofs[idx],
                                        sender=requester)
    assert tx.events == [coordinator.ShardIntegrityFailureProven(
        ds_id, rid, holder, idx, served, hashes[idx])]
    assert coordinator.shardFailureProven(ds_id, idx, served)
    with reverts("RetrievalShardFailureAlreadyProven", ds_id, idx, served):
        coordinator.reportShardFailure(rid, idx, served, sig, hashes[idx], proofs[idx],
                                       sender=requester)
    # a new request does not re-prove the same served hash, even with its own fresh receipt
    rid2, _ = kit.request(ds_id)
    sig2 = _served_sig(kit, holder, rid2, ds_id, idx, served)
    with reverts("RetrievalShardFailureAlreadyProven", ds_id, idx, served):
        coordinator.reportShardFailure(rid2, idx, served, sig2, hashes[idx], proofs[idx],
                                       sender=requester)
    # another wrong content of the same shard is another failure
    other = keccak(b"other garbage")
    tx = coordinator.reportShardFailure(rid2, idx, other, _served_sig(kit, holder, rid2, ds_id, idx, other),
                                        hashes[idx], proofs[idx], sender=requester)
    assert tx.events == [coordinator.ShardIntegrityFailureProven(
        ds_id, rid2, holder, idx, other, hashes[idx])]


def test_proven_failures_of_three_shards_fail_the_holder(kit, coordinator, holder_registry, merkle_ds,
                                                         requester, outsider):
    """Each (dataset, shard) proven wrong counts once; the third fails the holder on chain,
    with the coordinator named, so repair starts without the admin."""
    ds_id, rid, hashes, proofs = merkle_ds
    holder = kit.shard_holders[2]  # holds shards 2 and 7 of 10 (5 shard holders)

    def prove(ds, request, idx, served, leaf, proof):
        sig = _served_sig(kit, holder, request, ds, idx, served)
        return coordinator.reportShardFailure(request, idx, served, sig, leaf, proof, sender=requester)

    prove(ds_id, rid, 2, keccak(b"bad 2"), hashes[2], proofs[2])
    prove(ds_id, rid, 2, keccak(b"bad 2 again"), hashes[2], proofs[2])  # the same shard: not counted again
    assert holder_registry.provenFailures(holder) == 1
    tx = prove(ds_id, rid, 7, keccak(b"bad 7"), hashes[7], proofs[7])
    assert holder_registry.provenFailures(holder) == 2
    assert holder_registry.getHolder(holder).status == H_ACTIVE
    assert not [e for e in tx.events if e.event_name == "HolderFailed"]

    other_hashes = shard_hashes(10, b"other")
    root, other_proofs = merkle_root_and_proofs(other_hashes)
    other = kit.register(prm=params(kit.shard_holders, kit.fragment_holders, merkle_root=root),
                         hashes=other_hashes)
    rid2, _ = kit.request(other)
    tx = prove(other, rid2, 2, keccak(b"bad"), other_hashes[2], other_proofs[2])
    assert holder_registry.provenFailures(holder) == holder_registry.PROVEN_FAILURES_TO_FAIL() == 3
    assert holder_registry.getHolder(holder).status == H_FAILED
    assert [e for e in tx.events if e.event_name == "HolderFailed"] == [
        holder_registry.HolderFailed(holder, coordinator.address)]
    # only the prover role records failures
    with reverts("AccessControlUnauthorizedAccount", outsider, holder_registry.FAILURE_PROVER_ROLE()):
        holder_registry.recordProvenFailure(holder, sender=outsider)


def test_report_shard_failure_reverts(kit, coordinator, merkle_ds, outsider, requester):
    ds_id, rid, hashes, proofs = merkle_ds
    idx = 3
    holder = kit.shard_holders[idx]
    served = keccak(b"garbage")
    sig = _served_sig(kit, holder, rid, ds_id, idx, served)
    with reverts("RetrievalUnknownRequest", 999):
        coordinator.reportShardFailure(999, idx, served, sig, hashes[idx], proofs[idx],
                                       sender=requester)
    # only the requester of the request reports (anyone else could replay a leaked receipt)
    with reverts("RetrievalNotRequester", rid, outsider):
        coordinator.reportShardFailure(rid, idx, served, sig, hashes[idx], proofs[idx],
                                       sender=outsider)
    with reverts("RetrievalShardHashMatches", idx, hashes[idx]):
        coordinator.reportShardFailure(rid, idx, hashes[idx], sig, hashes[idx], proofs[idx],
                                       sender=requester)
    with reverts("RetrievalShardIndexOutOfRange", rid, 10, 10):
        coordinator.reportShardFailure(rid, 10, served, sig, hashes[idx], proofs[idx],
                                       sender=requester)
    # shard 4's hash is not the committed hash of shard 3 (the leaf binds the index)
    with reverts("RetrievalInvalidShardProof", idx, hashes[4]):
        coordinator.reportShardFailure(rid, idx, served, sig, hashes[4], proofs[4],
                                       sender=requester)
    with reverts("RetrievalInvalidShardProof", idx, hashes[idx]):
        coordinator.reportShardFailure(rid, idx, served, sig, hashes[idx], proofs[idx][:-1],
                                       sender=requester)
    # signed by a holder that does not hold shard 3 under the placement rule
    wrong = _served_sig(kit, kit.shard_holders[4], rid, ds_id, idx, served)
    with reverts("RetrievalInvalidReceiptSignature", holder, idx):
        coordinator.reportShardFailure(rid, idx, served, wrong, hashes[idx], proofs[idx],
                                       sender=requester)
    # a receipt for another served hash
    other = _served_sig(kit, holder, rid, ds_id, idx, keccak(b"x"))
    with reverts("RetrievalInvalidReceiptSignature", holder, idx):
        coordinator.reportShardFailure(rid, idx, served, other, hashes[idx], proofs[idx],
                                       sender=requester)


def test_served_receipt_is_bound_to_its_request(kit, coordinator, merkle_ds, requester):
    """A receipt signed while serving request A proves nothing under request B, and the
    public custody receipt (ShardReceipt) is never a serving receipt."""
    ds_id, rid, hashes, proofs = merkle_ds
    idx = 2
    holder = kit.shard_holders[idx]
    served = keccak(b"garbage")
    rid2, _ = kit.request(ds_id)
    for_rid = _served_sig(kit, holder, rid, ds_id, idx, served)
    with reverts("RetrievalInvalidReceiptSignature", holder, idx):
        coordinator.reportShardFailure(rid2, idx, served, for_rid, hashes[idx], proofs[idx],
                                       sender=requester)
    custody = _custody_sig(kit, holder, ds_id, idx, served)
    with reverts("RetrievalInvalidReceiptSignature", holder, idx):
        coordinator.reportShardFailure(rid, idx, served, custody, hashes[idx], proofs[idx],
                                       sender=requester)
    # the right receipt under its own request is accepted
    coordinator.reportShardFailure(rid, idx, served, for_rid, hashes[idx], proofs[idx], sender=requester)


def test_report_shard_failure_needs_an_open_request(kit, coordinator, merkle_ds, requester, kos,
                                                    approvers):
    ds_id, rid, hashes, proofs = merkle_ds
    idx = 1
    holder = kit.shard_holders[idx]
    served = keccak(b"garbage")

    def report(request_id):
        coordinator.reportShardFailure(request_id, idx, served,
                                       _served_sig(kit, holder, request_id, ds_id, idx, served),
                                       hashes[idx], proofs[idx], sender=requester)

    # denied by the KOS
    denied, _ = kit.request(ds_id)
    coordinator.denyRequest(denied, REASONS["KosPolicyMismatch"], sender=kos)
    with reverts("RetrievalInvalidStatus", denied, REQ_DENIED):
        report(denied)
    # completed
    done, _ = kit.request(ds_id)
    coordinator.completeRetrieval(done, sender=requester)
    with reverts("RetrievalInvalidStatus", done, REQ_COMPLETED):
        report(done)
    # still pending approvals (same hashes and root, a policy with a group)
    a0, a1, _ = approvers
    root, _ = merkle_root_and_proofs(hashes)
    gated = kit.register(policy(groups=[("legal", [str(a0), str(a1)], 1)]),
                         prm=params(kit.shard_holders, kit.fragment_holders, merkle_root=root),
                         hashes=hashes)
    pending, _ = kit.request(gated)
    with reverts("RetrievalInvalidStatus", pending, REQ_PENDING):
        coordinator.reportShardFailure(pending, idx, served,
                                       _served_sig(kit, holder, pending, gated, idx, served),
                                       hashes[idx], proofs[idx], sender=requester)
    # past the deadline
    deadline = coordinator.request(rid).deadline
    kit.at(deadline + 1)
    with reverts("RetrievalApprovalExpired", rid, deadline):
        report(rid)


def test_report_shard_failure_needs_an_active_dataset(kit, coordinator, merkle_ds, requester):
    ds_id, rid, hashes, proofs = merkle_ds
    idx = 1
    holder = kit.shard_holders[idx]
    served = keccak(b"garbage")
    kit.dataset_registry.revokeDataset(ds_id, sender=kit.owner)
    with reverts("RetrievalDatasetNotActive", rid, ds_id):
        coordinator.reportShardFailure(rid, idx, served, _served_sig(kit, holder, rid, ds_id, idx, served),
                                       hashes[idx], proofs[idx], sender=requester)


def test_bogus_root_cannot_frame_an_honest_holder(kit, coordinator, requester):
    """The owner registers a root over other hashes than the published ones and hopes to
    prove the honest holder's true hash wrong. The honest holder never confirms (its agent
    checks the root: integration/holder/test_holder_custody.py), so the dataset stays
    Pending, requests are denied, and no proof is accepted."""
    published = shard_hashes(10, b"real")
    bogus = shard_hashes(10, b"bogus")
    root, proofs = merkle_root_and_proofs(bogus)
    prm = params(kit.shard_holders, kit.fragment_holders, merkle_root=root)
    ds_id = kit.register(prm=prm, hashes=published, confirm=False)
    idx = 4
    honest = kit.shard_holders[idx]
    for h in sorted(({str(a) for a in prm[7]} | {str(a) for a in prm[8]}) - {str(honest)}):
        kit.dataset_registry.confirmCustody(ds_id, sender=h)
    rid, _ = kit.request(ds_id)
    assert kit.status(rid) == (REQ_DENIED, REASONS["DatasetNotActive"])
    sig = _served_sig(kit, honest, rid, ds_id, idx, published[idx])
    with reverts("RetrievalDatasetNotActive", rid, ds_id):
        coordinator.reportShardFailure(rid, idx, published[idx], sig, bogus[idx], proofs[idx],
                                       sender=requester)


@pytest.fixture
def tokened(kit, coordinator, approved, kos):
    """The approved request with tokens for fragment holders 0..2; holder 0 delivered."""
    fh = kit.fragment_holders
    coordinator.issueTokens(approved, fh[:3], [b"t0", b"t1", b"t2"], sender=kos)
    coordinator.deliverFragments(approved, b"sealed", sender=fh[0])
    return approved


def test_report_wrong_fragments(kit, coordinator, tokened, outsider, requester, ds):
    fh = kit.fragment_holders
    with reverts("RetrievalNotRequester", tokened, outsider):
        coordinator.reportFragmentFailure(tokened, fh[0], FRAGMENT_WRONG, sender=outsider)
    for bad in (0, 3, 255):
        with reverts("RetrievalInvalidFragmentFailureKind", bad):
            coordinator.reportFragmentFailure(tokened, fh[0], bad, sender=requester)
    # no token: an outsider, and a fragment holder the KOS has not served
    with reverts("RetrievalNoToken", tokened, outsider):
        coordinator.reportFragmentFailure(tokened, outsider, FRAGMENT_WRONG, sender=requester)
    with reverts("RetrievalNoToken", tokened, fh[4]):
        coordinator.reportFragmentFailure(tokened, fh[4], FRAGMENT_WRONG, sender=requester)
    # token but nothing delivered: nothing can be wrong yet
    with reverts("RetrievalNotDelivered", tokened, fh[1]):
        coordinator.reportFragmentFailure(tokened, fh[1], FRAGMENT_WRONG, sender=requester)
    tx = coordinator.reportFragmentFailure(tokened, fh[0], FRAGMENT_WRONG, sender=requester)
    assert tx.events == [coordinator.FragmentFailureReported(tokened, ds, fh[0], FRAGMENT_WRONG)]
    with reverts("RetrievalFragmentFailureAlreadyReported", tokened, fh[0]):
        coordinator.reportFragmentFailure(tokened, fh[0], FRAGMENT_WRONG, sender=requester)
    # a completed request still takes claims about what happened while it was open
    coordinator.deliverFragments(tokened, b"s1", sender=fh[1])
    coordinator.completeRetrieval(tokened, sender=requester)
    coordinator.reportFragmentFailure(tokened, fh[1], FRAGMENT_WRONG, sender=requester)


def test_report_missing_fragments(kit, coordinator, tokened, requester, ds, gds):
    fh = kit.fragment_holders
    deadline = coordinator.request(tokened).deadline
    # before the deadline the holder may still deliver
    kit.at(deadline)
    with reverts("RetrievalDeliveryWindowOpen", tokened, deadline):
        coordinator.reportFragmentFailure(tokened, fh[1], FRAGMENT_MISSING, sender=requester)
    kit.at(deadline + 1)
    with reverts("RetrievalAlreadyDelivered", tokened, fh[0]):
        coordinator.reportFragmentFailure(tokened, fh[0], FRAGMENT_MISSING, sender=requester)
    kit.at(deadline + 1)
    with reverts("RetrievalNoToken", tokened, fh[3]):
        coordinator.reportFragmentFailure(tokened, fh[3], FRAGMENT_MISSING, sender=requester)
    kit.at(deadline + 1)
    tx = coordinator.reportFragmentFailure(tokened, fh[1], FRAGMENT_MISSING, sender=requester)
    assert tx.events == [coordinator.FragmentFailureReported(tokened, ds, fh[1], FRAGMENT_MISSING)]
    with reverts("RetrievalFragmentFailureAlreadyReported", tokened, fh[1]):
        coordinator.reportFragmentFailure(tokened, fh[1], FRAGMENT_WRONG, sender=requester)
    pending, _ = kit.request(gds)
    with reverts("RetrievalInvalidStatus", pending, REQ_PENDING):
        coordinator.reportFragmentFailure(pending, fh[1], FRAGMENT_MISSING, sender=requester)


def test_hash_attestation_matches_eip712(kit, coordinator, requester):
    a = attestation(requester, -33_868_800, -151_209_300, 25, 1_700_000_000, b"\x05" * 32)
    dom = domain(coordinator, kit.chain_id)
    expected = typed_digest(dom, ATTESTATION_TYPES, a)
    assert coordinator.hashAttestation(tuple(a.values())) == expected
