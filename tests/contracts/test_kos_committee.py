"""KosCommittee on anvil with the real coordinator and registries: epochs and their validation,
the owner's deal (root computed on chain, equal to the Python one), members' releases and
denials (the t_k-th release issues the marker tokens, > m - t_k denials deny), and the on-chain
wrong-share proof against the stored root, fed by Python-built deals and envelopes
(shardkey.crypto.committee) signed with eth-account."""

from __future__ import annotations

import os

import pytest
from contract_helpers import REASONS, REQ_APPROVED, REQ_DENIED, ZERO, params, policy, reverts, view_reverts
from eth_account import Account
from eth_utils import keccak

from shardkey.chain.committee import sign_envelope
from shardkey.crypto import committee as kc
from shardkey.crypto.committee_envelope import ShareEnvelope, committee_marker, envelope_digest
from shardkey.crypto.hpke import HpkePrivateKey, HpkeSuiteId, committee_share_info, seal

X25519_KEY = b"\x11" * 32
HYBRID_KEY = b"\x22" * 1216
MAX_REASON = max(REASONS.values())


@pytest.fixture(scope="session")
def committee(project, admin, coordinator):
    c = admin.deploy(project.KosCommittee, admin, coordinator)
    coordinator.grantRole(coordinator.KOS_ROLE(), c, sender=admin)
    return c


@pytest.fixture(scope="session")
def members(accounts, chain):
    ms = [accounts.generate_test_account() for _ in range(8)]
    for m in ms:
        chain.provider.set_balance(m.address, 10**21)
    return ms


def _start(committee, admin, members, threshold, key=X25519_KEY) -> int:
    tx = committee.startEpoch([m.address for m in members], [key] * len(members), threshold, sender=admin)
    return tx.events.filter(committee.CommitteeEpochStarted)[0].epoch


@pytest.fixture
def epoch1(committee, admin, members):
    """Epoch 1: members 0..2, threshold 2 (each test starts from a chain without epochs)."""
    assert committee.currentEpoch() == 0
    tx = committee.startEpoch([m.address for m in members[:3]], [X25519_KEY, HYBRID_KEY, X25519_KEY], 2,
                              sender=admin)
    return tx


def _signer(member):
    return Account.from_key(member.private_key)


def _addr(account) -> bytes:
    return bytes.fromhex(str(account.address)[2:])


class Dealt:
    """A Pending dataset with fragment holders ``holders``, dealt to the current committee epoch
    (``members``, threshold ``t``); ``confirm()`` makes it Active, ``request()`` opens a request."""

    def __init__(self, kit, committee, members, holders, t, *, sealed=None, pol=None) -> None:
        self.kit, self.committee, self.members, self.holders, self.t = kit, committee, members, holders, t
        self.chain_id = kit.chain_id
        self.epoch = committee.currentEpoch()
        prm = params(kit.shard_holders, holders, threshold=min(len(holders), 2))
        self.ds = kit.register(pol, prm=prm, confirm=False)
        self.keys = [os.urandom(32) for _ in holders]
        self.deal = kc.deal(self.chain_id, self.ds, self.epoch, [h.address for h in holders], self.keys, t,
                            len(members), os.urandom)
        m = len(members)
        self.sealed = sealed or [b"sealed" + bytes([j, i]) for j in range(len(holders)) for i in range(m)]
        self.tx = committee.registerDeal(self.ds, 1, self.deal.flat_commitments(), self.sealed,
                                         sender=kit.owner)

    def confirm(self) -> Dealt:
        prm_holders = {str(a) for a in self.kit.shard_holders} | {str(h.address) for h in self.holders}
        for h in sorted(prm_holders):
            self.kit.dataset_registry.confirmCustody(self.ds, sender=h)
        return self

    def request(self) -> int:
        rid, _ = self.kit.request(self.ds)
        return rid

    def envelopes(self, tag: bytes = b"env") -> list[bytes]:
        return [tag + bytes([j]) for j in range(len(self.holders))]

    def release(self, rid: int, i: int):
        return self.committee.releaseShares(rid, self.envelopes(), sender=self.members[i])

    def envelope(self, j: int, i: int, *, rid: int, share: bytes | None = None, signer=None,
                 member=None, epoch: int | None = None, ds: bytes | None = None) -> ShareEnvelope:
        member = member or self.members[i]
        env = ShareEnvelope(rid, ds or self.ds, _addr(self.holders[j]), _addr(member),
                            self.epoch if epoch is None else epoch,
                            self.deal.shares[j][i] if share is None else share)
        who = signer or member
        if who is member:
            return sign_envelope(_signer(member), env, self.chain_id, str(self.committee.address))
        digest = envelope_digest(env, self.chain_id, str(self.committee.address))
        return env.signed(bytes(_signer(who).unsafe_sign_hash(digest).signature))

    def wrong(self, j: int, i: int) -> bytes:
        s = self.deal.shares[j][i]
        return bytes([s[0] ^ 0x80]) + s[1:]

    def prove(self, env: ShareEnvelope, j: int, i: int, *, proof=None, commitment=None, sender=None):
        return self.committee.proveWrongShare(
            env.as_tuple(), env.signature, commitment or self.deal.commitments[j][i],
            self.deal.proof(j, i) if proof is None else proof, sender=sender or self.holders[j])


@pytest.fixture
def dealt(kit, committee, members, active_holders, epoch1):
    """An Active dataset with fragment holders active_holders[1:3], dealt to epoch 1 (3 members, t=2)."""
    return Dealt(kit, committee, members[:3], active_holders[1:3], 2).confirm()


# --- epochs ------------------------------------------------------------------------------


def test_epoch_started_and_read_back(committee, members, epoch1):
    ev = epoch1.events.filter(committee.CommitteeEpochStarted)[0]
    assert (ev.epoch, list(ev.members), [bytes(k) for k in ev.hpkePublicKeys], ev.threshold) == (
        1, [m.address for m in members[:3]], [X25519_KEY, HYBRID_KEY, X25519_KEY], 2)
    assert committee.currentEpoch() == 1
    got_members, got_keys, got_threshold = committee.committee(1)
    assert list(got_members) == [m.address for m in members[:3]] and got_threshold == 2
    assert [bytes(k) for k in got_keys] == [X25519_KEY, HYBRID_KEY, X25519_KEY]
    assert committee.threshold(1) == 2
    assert [committee.memberIndex(1, m) for m in members[:3]] == [0, 1, 2]
    assert committee.isMember(1, members[0]) and not committee.isMember(1, members[3])
    assert not committee.isMember(2, members[0])
    view_reverts(committee.memberIndex, (1, members[3].address), "CommitteeNotMember", 1, members[3])
    view_reverts(committee.committee, (2,), "CommitteeUnknownEpoch", 2)
    view_reverts(committee.threshold, (0,), "CommitteeUnknownEpoch", 0)


def test_a_new_epoch_leaves_the_old_one_intact(committee, admin, members, epoch1):
    tx = committee.startEpoch([members[3].address, members[0].address], [X25519_KEY, X25519_KEY], 1,
                              sender=admin)
    assert tx.events.filter(committee.CommitteeEpochStarted)[0].epoch == 2
    assert committee.currentEpoch() == 2 and committee.threshold(2) == 1 and committee.threshold(1) == 2
    assert committee.memberIndex(2, members[0]) == 1 and committee.memberIndex(1, members[0]) == 0
    assert not committee.isMember(2, members[1])


def test_epoch_validation(committee, admin, members, outsider):
    a, b = members[0].address, members[1].address
    zero = "0x" + "00" * 20
    before = committee.currentEpoch()
    cases = [
        (([a, b], [X25519_KEY, X25519_KEY], 0), "CommitteeInvalidThreshold", (0, 2)),
        (([a, b], [X25519_KEY, X25519_KEY], 3), "CommitteeInvalidThreshold", (3, 2)),
        (([], [], 1), "CommitteeInvalidThreshold", (1, 0)),
        (([a, b], [X25519_KEY], 1), "CommitteeLengthMismatch", (2, 1)),
        (([a, zero], [X25519_KEY, X25519_KEY], 1), "CommitteeZeroMember", (1,)),
        (([a, b, a], [X25519_KEY] * 3, 2), "CommitteeDuplicateMember", (a,)),
        (([a, b], [X25519_KEY, b""], 1), "CommitteeInvalidPublicKey", (b, 0)),
        (([a, b], [X25519_KEY, b"\x01" * 33], 1), "CommitteeInvalidPublicKey", (b, 33)),
    ]
    for args, error, expected in cases:
        with reverts(error, *expected):
            committee.startEpoch(*args, sender=admin)
    with reverts("AccessControlUnauthorizedAccount", outsider, b"\x00" * 32):
        committee.startEpoch([a], [X25519_KEY], 1, sender=outsider)
    assert committee.currentEpoch() == before


# --- deals -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(3, 5), (5, 7), (1, 1), (6, 2), (2, 3)])
def test_the_root_computed_on_chain_is_the_python_root(kit, committee, admin, members, active_holders, n, m):
    epoch = _start(committee, admin, members[:m], min(m, 2))
    d = Dealt(kit, committee, members[:m], active_holders[:n], min(m, 2))
    rows = kc.commitment_rows(d.deal.flat_commitments(), n, m)
    root = kc.commitments_root([h.address for h in d.holders], rows)
    assert root == d.deal.root
    flat = d.deal.flat_commitments()
    assert d.tx.events == [committee.DealRegistered(d.ds, 1, epoch, root, flat, d.sealed)]
    assert committee.deal(d.ds, 1) == (epoch, root)
    assert committee.deal(d.ds, 2) == (0, b"\0" * 32)
    # every commitment's proof leads to the stored root
    for j in range(n):
        for i in range(m):
            assert kc.verify_commitment_proof(d.holders[j].address, i, d.deal.commitments[j][i],
                                              d.deal.proof(j, i), committee.deal(d.ds, 1)[1])


def test_the_root_binds_order_and_holders(kit, committee, admin, members, active_holders):
    """A deal with two commitments swapped is stored with another root (the one of its own list)."""
    _start(committee, admin, members[:3], 2)
    prm = params(kit.shard_holders, active_holders[:2], threshold=2)
    ds = kit.register(prm=prm, confirm=False)
    deal = kc.deal(kit.chain_id, ds, 1, [h.address for h in active_holders[:2]], [os.urandom(32)] * 2, 2, 3,
                   os.urandom)
    flat = deal.flat_commitments()
    flat[0], flat[1] = flat[1], flat[0]
    tx = committee.registerDeal(ds, 1, flat, [b"s"] * 6, sender=kit.owner)
    stored = bytes(committee.deal(ds, 1)[1])
    assert stored != deal.root
    rows = kc.commitment_rows(flat, 2, 3)
    assert stored == kc.commitments_root([h.address for h in active_holders[:2]], rows)
    assert tx.events.filter(committee.DealRegistered)[0].root == stored


def test_deal_rules(kit, committee, admin, members, active_holders, outsider, project, coordinator):
    holders = active_holders[:2]
    ds = kit.register(prm=params(kit.shard_holders, holders, threshold=2), confirm=False)
    flat, shares = [keccak(bytes([k])) for k in range(6)], [b"s" + bytes([k]) for k in range(6)]
    # nobody to deal to yet
    with reverts("DealNoCommittee"):
        committee.registerDeal(ds, 1, flat, shares, sender=kit.owner)
    _start(committee, admin, members[:3], 2)
    with reverts("DealNotOwner", ds, outsider):
        committee.registerDeal(ds, 1, flat, shares, sender=outsider)
    unknown = b"\x07" * 32
    with reverts("DealNotOwner", unknown, kit.owner):
        committee.registerDeal(unknown, 1, flat, shares, sender=kit.owner)
    for epoch in (0, 2):
        with reverts("DealUnknownFragmentEpoch", ds, epoch):
            committee.registerDeal(ds, epoch, flat, shares, sender=kit.owner)
    with reverts("DealLengthMismatch", 6, 5, 6):
        committee.registerDeal(ds, 1, flat[:5], shares, sender=kit.owner)
    with reverts("DealLengthMismatch", 6, 6, 7):
        committee.registerDeal(ds, 1, flat, [*shares, b"x"], sender=kit.owner)
    with reverts("DealEmptyShare", 4):
        committee.registerDeal(ds, 1, flat, [*shares[:4], b"", shares[5]], sender=kit.owner)
    committee.registerDeal(ds, 1, flat, shares, sender=kit.owner)
    with reverts("DealAlreadyRegistered", ds, 1):
        committee.registerDeal(ds, 1, flat, shares, sender=kit.owner)
    # an Active dataset's first epoch is not pending any more, nor is a revoked one's
    active = kit.register(prm=params(kit.shard_holders, holders, threshold=2))
    with reverts("DealFragmentEpochNotPending", active, 1):
        committee.registerDeal(active, 1, flat, shares, sender=kit.owner)
    revoked = kit.register(prm=params(kit.shard_holders, holders, threshold=2), confirm=False)
    kit.dataset_registry.revokeDataset(revoked, sender=kit.owner)
    with reverts("DealFragmentEpochNotPending", revoked, 1):
        committee.registerDeal(revoked, 1, flat, shares, sender=kit.owner)
    assert committee.deal(active, 1) == (0, b"\0" * 32)


def test_a_redealt_fragment_epoch_is_dealt_while_pending(kit, committee, dealt, spare, members, admin):
    """Epoch 2 of a re-deal: dealt while pending, to the committee epoch current then; not after."""
    tx = kit.coordinator.requestRedeal(dealt.ds, b"epk-redeal", (kit.owner.address, 0, 0, 0, 0, b"\0" * 32),
                                       ZERO, b"", sender=kit.owner)
    redeal = tx.events.filter(kit.coordinator.RetrievalRequested)[0].requestId
    dealt.release(redeal, 0)  # the marker tokens count as the re-deal's release
    dealt.release(redeal, 2)
    new = [dealt.holders[0], spare]
    kit.dataset_registry.redealFragments(dealt.ds, redeal, [h.address for h in new], 2, [b"w1", b"w2"],
                                         [keccak(b"r1"), keccak(b"r2")], sender=kit.owner)
    epoch2 = _start(committee, admin, members[3:6], 2)
    deal = kc.deal(kit.chain_id, dealt.ds, epoch2, [h.address for h in new], [os.urandom(32)] * 2, 2, 3,
                   os.urandom)
    with reverts("DealUnknownFragmentEpoch", dealt.ds, 3):
        committee.registerDeal(dealt.ds, 3, deal.flat_commitments(), [b"s"] * 6, sender=kit.owner)
    committee.registerDeal(dealt.ds, 2, deal.flat_commitments(), [b"s"] * 6, sender=kit.owner)
    assert committee.deal(dealt.ds, 2) == (epoch2, deal.root)
    assert committee.deal(dealt.ds, 1) == (1, dealt.deal.root)  # the old deal stays


# --- releases and denials -----------------------------------------------------------------


def test_the_threshold_release_issues_marker_tokens(kit, committee, coordinator, dealt, members):
    rid = dealt.request()
    assert committee.releaseState(rid, members[0]) == 0 and committee.releaseCounts(rid) == (0, 0)
    tx = dealt.release(rid, 0)
    assert tx.events == [committee.SharesReleased(rid, dealt.ds, members[0], 1, dealt.envelopes())]
    assert committee.releaseState(rid, members[0]) == 1 and committee.releaseCounts(rid) == (1, 0)
    assert not coordinator.tokenIssued(rid, dealt.holders[0])
    with reverts("RetrievalNoToken", rid, dealt.holders[0]):
        coordinator.deliverFragments(rid, b"fragments", sender=dealt.holders[0])
    # once per member, release XOR denial
    with reverts("ReleaseAlreadyDone", rid, members[0], 1):
        dealt.release(rid, 0)
    with reverts("ReleaseAlreadyDone", rid, members[0], 1):
        committee.denyRelease(rid, REASONS["KosPolicyMismatch"], sender=members[0])
    tx = dealt.release(rid, 2)
    marker = committee_marker(1)
    assert marker == b"SKC1" + (1).to_bytes(8, "big")
    tokens = [e for e in tx.events if e.event_name == "TokenIssued"]
    assert [(t.requestId, t.holder, bytes(t.token)) for t in tokens] == [
        (rid, h.address, marker) for h in dealt.holders]
    assert committee.releaseCounts(rid) == (2, 0)
    assert all(coordinator.tokenIssued(rid, h) for h in dealt.holders)
    assert coordinator.request(rid).tokensIssued == len(dealt.holders)
    tx = coordinator.deliverFragments(rid, b"fragments", sender=dealt.holders[0])
    assert tx.events == [coordinator.FragmentsDelivered(rid, dealt.holders[0], b"fragments")]
    # a late member may still release; no second set of tokens
    tx = dealt.release(rid, 1)
    assert [e.event_name for e in tx.events] == ["SharesReleased"]
    assert committee.releaseCounts(rid) == (3, 0)


def test_a_token_another_kos_role_account_posted_first_does_not_block_the_threshold_release(
        committee, coordinator, dealt, members, kos):
    """A single-key KOS run beside the committee (KOS_ROLE too) tokened one holder first: the
    t_k-th release still lands and tokens the others (the coordinator refuses a second token)."""
    rid = dealt.request()
    first = dealt.holders[0]
    coordinator.issueTokens(rid, [first], [b"legacy"], sender=kos)
    dealt.release(rid, 0)
    tx = dealt.release(rid, 1)
    tokens = [(t.holder, bytes(t.token)) for t in tx.events if t.event_name == "TokenIssued"]
    assert tokens == [(h.address, committee_marker(1)) for h in dealt.holders[1:]]
    assert all(coordinator.tokenIssued(rid, h) for h in dealt.holders)
    assert coordinator.request(rid).tokensIssued == len(dealt.holders)
    # every holder tokened already: the threshold release issues nothing and still lands
    rid2 = dealt.request()
    coordinator.issueTokens(rid2, list(dealt.holders), [b"legacy"] * len(dealt.holders), sender=kos)
    dealt.release(rid2, 2)
    tx = dealt.release(rid2, 0)
    assert [e.event_name for e in tx.events] == ["SharesReleased"]


def test_release_rules(kit, committee, dealt, members, gds, approvers):
    rid = dealt.request()
    with reverts("CommitteeNotMember", 1, members[3]):
        committee.releaseShares(rid, dealt.envelopes(), sender=members[3])
    with reverts("ReleaseLengthMismatch", rid, 2, 1):
        committee.releaseShares(rid, [b"e"], sender=members[0])
    with reverts("ReleaseLengthMismatch", rid, 2, 3):
        committee.releaseShares(rid, [b"e"] * 3, sender=members[0])
    with reverts("ReleaseEmptyEnvelope", rid, 1):
        committee.releaseShares(rid, [b"e", b""], sender=members[0])
    with reverts("RetrievalUnknownRequest", 999):
        committee.releaseShares(999, [b"e", b"e"], sender=members[0])
    # a legacy dataset has no deal
    legacy_rid, _ = kit.request(kit.register())
    with reverts("ReleaseNoDeal", legacy_rid, kit.coordinator.request(legacy_rid).datasetId, 1):
        committee.releaseShares(legacy_rid, [b"e"] * 5, sender=members[0])
    assert committee.releaseCounts(rid) == (0, 0)


def test_release_only_while_the_request_is_open(kit, committee, coordinator, admin, members, active_holders,
                                                approvers, epoch1):
    # a Pending request (approvals outstanding) is not open; an expired one neither
    pol = policy(groups=[("legal", [str(approvers[0])], 1)], approvalWindow=600)
    d = Dealt(kit, committee, members[:3], active_holders[1:3], 2, pol=pol).confirm()
    rid = d.request()
    assert coordinator.request(rid).status == 1  # Pending
    with reverts("ReleaseRequestNotOpen", rid):
        d.release(rid, 0)
    coordinator.approve(kit.subject(rid), sender=approvers[0])
    assert coordinator.isOpen(rid)
    d.release(rid, 0)
    kit.at(coordinator.request(rid).deadline + 1)
    with reverts("ReleaseRequestNotOpen", rid):
        d.release(rid, 1)
    # a revoked dataset's request is not open either
    rid2 = d.request()
    kit.dataset_registry.revokeDataset(d.ds, sender=kit.owner)
    with reverts("ReleaseRequestNotOpen", rid2):
        d.release(rid2, 0)


def test_only_members_of_the_deals_epoch_release(kit, committee, admin, members, dealt):
    """A later epoch does not move the deal: its new members cannot release, the deal's can."""
    _start(committee, admin, [members[3], members[0]], 1)
    rid = dealt.request()
    with reverts("CommitteeNotMember", 1, members[3]):
        dealt.committee.releaseShares(rid, dealt.envelopes(), sender=members[3])
    assert dealt.release(rid, 0).events[0].committeeEpoch == 1


def test_enough_denials_deny_the_request(kit, committee, coordinator, dealt, members):
    rid = dealt.request()
    reason = REASONS["KosPolicyMismatch"]
    for bad in (0, MAX_REASON + 1):
        with reverts("ReleaseInvalidReason", bad):
            committee.denyRelease(rid, bad, sender=members[0])
    with reverts("CommitteeNotMember", 1, members[3]):
        committee.denyRelease(rid, reason, sender=members[3])
    tx = committee.denyRelease(rid, reason, sender=members[1])
    assert tx.events == [committee.ReleaseDenied(rid, dealt.ds, members[1], reason)]
    assert committee.releaseState(rid, members[1]) == 2 and committee.releaseCounts(rid) == (0, 1)
    assert coordinator.request(rid).status == REQ_APPROVED  # m - t_k = 1 denial: t_k releases still possible
    with reverts("ReleaseAlreadyDone", rid, members[1], 2):
        committee.denyRelease(rid, reason, sender=members[1])
    with reverts("ReleaseAlreadyDone", rid, members[1], 2):
        dealt.release(rid, 1)
    other = REASONS["KosWrapKeyInvalid"]
    tx = committee.denyRelease(rid, other, sender=members[2])
    assert [e.event_name for e in tx.events] == ["ReleaseDenied", "RetrievalDenied"]
    assert tx.events[1] == coordinator.RetrievalDenied(rid, dealt.ds, other, committee)
    r = coordinator.request(rid)
    assert (r.status, r.denialReason) == (REQ_DENIED, other)
    with reverts("ReleaseRequestNotOpen", rid):
        dealt.release(rid, 0)
    with reverts("ReleaseRequestClosed", rid, REQ_DENIED):
        committee.denyRelease(rid, reason, sender=members[0])


def test_one_denial_then_the_threshold_of_releases_serves(committee, coordinator, dealt, members):
    rid = dealt.request()
    committee.denyRelease(rid, REASONS["KosPolicyMismatch"], sender=members[0])
    dealt.release(rid, 1)
    tx = dealt.release(rid, 2)
    assert len([e for e in tx.events if e.event_name == "TokenIssued"]) == len(dealt.holders)
    assert committee.releaseCounts(rid) == (2, 1) and coordinator.request(rid).status == REQ_APPROVED


def test_denials_of_a_larger_committee_and_of_a_pending_request(kit, committee, coordinator, admin, members,
                                                                 active_holders, approvers):
    """m = 5, t_k = 2: the request is denied on the 4th denial (> m - t_k = 3), Pending or not."""
    _start(committee, admin, members[:5], 2)
    d = Dealt(kit, committee, members[:5], active_holders[1:4], 2,
              pol=policy(groups=[("legal", [str(approvers[0])], 1)])).confirm()
    rid = d.request()
    assert coordinator.request(rid).status == 1  # Pending: members may deny before the approvals
    reason = REASONS["NotAllowedRequester"]
    for i in range(3):
        committee.denyRelease(rid, reason, sender=members[i])
        assert coordinator.request(rid).status == 1
    tx = committee.denyRelease(rid, reason, sender=members[3])
    assert tx.events[-1] == coordinator.RetrievalDenied(rid, d.ds, reason, committee)
    assert committee.releaseCounts(rid) == (0, 4)


def test_the_committee_needs_kos_role(kit, project, admin, coordinator, members, active_holders):
    """Without KOS_ROLE on the coordinator the t_k-th release cannot issue tokens (deploy grants it)."""
    bare = admin.deploy(project.KosCommittee, admin, coordinator)
    _start(bare, admin, members[:1], 1)
    d = Dealt(kit, bare, members[:1], active_holders[1:3], 1).confirm()
    rid = d.request()
    with reverts("AccessControlUnauthorizedAccount", bare, coordinator.KOS_ROLE()):
        d.release(rid, 0)


# --- the wrong-share proof ------------------------------------------------------------------


def test_python_and_solidity_hashes_agree(dealt, committee):
    env = dealt.envelope(1, 2, rid=2**255 + 3)
    assert bytes(committee.shareDigest(env.as_tuple())) == kc.envelope_digest(
        env, dealt.chain_id, str(committee.address))
    holder = dealt.holders[1].address
    assert bytes(committee.shareCommitment(dealt.ds, holder, 2, 1, env.share)) == dealt.deal.commitments[1][2]
    assert bytes(committee.commitmentLeaf(holder, 2, dealt.deal.commitments[1][2])) == kc.commitment_leaf(
        holder, 2, dealt.deal.commitments[1][2])


def test_a_signed_wrong_share_is_proven_against_the_stored_root(dealt, committee, members):
    rid = dealt.request()
    env = dealt.envelope(0, 1, rid=rid, share=dealt.wrong(0, 1))
    tx = dealt.prove(env, 0, 1)
    assert tx.events == [committee.ShareFaultProven(rid, dealt.ds, members[1], dealt.holders[0], 1,
                                                    dealt.deal.root)]
    assert committee.shareFaultProven(rid, members[1], dealt.holders[0])
    assert not committee.shareFaultProven(rid, members[0], dealt.holders[0])
    with reverts("ShareFaultAlreadyRecorded", rid, members[1], dealt.holders[0]):
        dealt.prove(env, 0, 1)


def test_a_share_for_another_dataset_or_epoch_is_refused(kit, dealt, committee, admin, members,
                                                          active_holders):
    rid = dealt.request()
    other = Dealt(kit, committee, members[:3], active_holders[1:3], 2).confirm()
    # the envelope names another dataset than the request's
    env = other.envelope(0, 1, rid=rid, share=other.wrong(0, 1))
    with reverts("ShareWrongDataset", rid, other.ds, dealt.ds):
        other.prove(env, 0, 1)
    # a share signed for a later epoch the member is also in
    _start(committee, admin, members[:3], 2)
    env = dealt.envelope(0, 1, rid=rid, share=dealt.wrong(0, 1), epoch=2)
    with reverts("ShareWrongEpoch", rid, 2, 1):
        dealt.prove(env, 0, 1)
    # a request of a legacy dataset has no deal
    legacy_rid, _ = kit.request(kit.register())
    legacy_ds = bytes(kit.coordinator.request(legacy_rid).datasetId)
    env = dealt.envelope(0, 1, rid=legacy_rid, share=dealt.wrong(0, 1), ds=legacy_ds)
    with reverts("ReleaseNoDeal", legacy_rid, legacy_ds, 1):
        dealt.prove(env, 0, 1)


def test_a_correct_share_is_refused(dealt, members):
    rid = dealt.request()
    with reverts("ShareMatchesCommitment", members[2]):
        dealt.prove(dealt.envelope(1, 2, rid=rid), 1, 2)


def test_a_forged_signature_is_refused(dealt, members):
    rid = dealt.request()
    # signed by member 0 for member 1's slot, and by an outsider
    for forger in (members[0], members[3]):
        env = dealt.envelope(0, 1, rid=rid, share=dealt.wrong(0, 1), signer=forger)
        with reverts("ShareSignatureInvalid", members[1]):
            dealt.prove(env, 0, 1)
    env = dealt.envelope(0, 1, rid=rid, share=dealt.wrong(0, 1))
    tampered = env.signed(env.signature[:10] + bytes([env.signature[10] ^ 1]) + env.signature[11:])
    with reverts("ShareSignatureInvalid", members[1]):
        dealt.prove(tampered, 0, 1)


def test_a_bad_merkle_proof_is_refused(dealt):
    rid = dealt.request()
    root = dealt.deal.root
    env = dealt.envelope(0, 1, rid=rid, share=dealt.wrong(0, 1))
    c = dealt.deal.commitments[0][1]
    with reverts("ShareProofInvalid", c, root):
        dealt.prove(env, 0, 1, proof=dealt.deal.proof(0, 2))
    # another member's (or holder's) commitment cannot be passed off as this member's
    other = dealt.deal.commitments[0][2]
    with reverts("ShareProofInvalid", other, root):
        dealt.prove(env, 0, 1, commitment=other, proof=dealt.deal.proof(0, 2))
    other = dealt.deal.commitments[1][1]
    with reverts("ShareProofInvalid", other, root):
        dealt.prove(env, 0, 1, commitment=other, proof=dealt.deal.proof(1, 1))


def test_a_non_member_or_other_caller_is_refused(dealt, members, outsider):
    rid = dealt.request()
    env = dealt.envelope(0, 0, rid=rid, member=members[3], share=b"\x01" * 32)
    with reverts("CommitteeNotMember", 1, members[3]):
        dealt.prove(env, 0, 0)
    env = dealt.envelope(0, 1, rid=rid, share=dealt.wrong(0, 1))
    with reverts("ShareCallerNotHolder", outsider, dealt.holders[0]):
        dealt.prove(env, 0, 1, sender=outsider)


def test_share_failure_claims(dealt, committee, members):
    rid, ds, holder = dealt.request(), dealt.ds, dealt.holders[0]
    tx = committee.reportShareFailure(rid, ds, 1, members[2], 2, sender=holder)
    assert tx.events == [committee.ShareFailureReported(rid, ds, members[2], holder, 2)]
    assert not committee.shareFaultProven(rid, members[2], holder)
    with reverts("ShareFaultAlreadyRecorded", rid, members[2], holder):
        committee.reportShareFailure(rid, ds, 1, members[2], 1, sender=holder)
    for kind in (0, 3):
        with reverts("ShareInvalidFailureKind", kind):
            committee.reportShareFailure(rid, ds, 1, members[2], kind, sender=holder)
    with reverts("CommitteeNotMember", 1, members[3]):
        committee.reportShareFailure(rid, ds, 1, members[3], 1, sender=holder)
    # a claim does not stop the proof of the same member's wrong share
    dealt.prove(dealt.envelope(0, 2, rid=rid, share=dealt.wrong(0, 2)), 0, 2)
    assert committee.shareFaultProven(rid, members[2], holder)


# --- gas ----------------------------------------------------------------------------------


def _sealed_len(suite: HpkeSuiteId, size: int) -> int:
    key = HpkePrivateKey.generate(os.urandom, suite)
    info = committee_share_info(1, b"\0" * 32, ZERO, ZERO, 1)
    return len(seal(key.public_key_bytes(), os.urandom(size), info))


@pytest.mark.parametrize("suite", [HpkeSuiteId.X25519, HpkeSuiteId.MLKEM768_X25519])
def test_committee_gas(kit, committee, admin, members, active_holders, suite, capsys):
    """Gas figures for docs/CONTRACTS.md with real sealed sizes: startEpoch of 5 members;
    registerDeal of 3 holders x 5 members; releaseShares for n = 5 holders (a plain one and the
    t_k-th, which issues the 5 tokens); denyRelease; proveWrongShare; reportShareFailure."""
    key = HYBRID_KEY if suite == HpkeSuiteId.MLKEM768_X25519 else X25519_KEY
    start = committee.startEpoch([m.address for m in members[:5]], [key] * 5, 2, sender=admin)
    share_len, env_len = _sealed_len(suite, 32), _sealed_len(suite, 210)
    d3 = Dealt(kit, committee, members[:5], active_holders[1:4], 2,
               sealed=[os.urandom(share_len) for _ in range(15)]).confirm()
    d5 = Dealt(kit, committee, members[:5], active_holders[1:6], 2,
               sealed=[os.urandom(share_len) for _ in range(25)]).confirm()
    rid = d5.request()
    envelopes = [os.urandom(env_len) for _ in range(5)]
    first = committee.releaseShares(rid, envelopes, sender=members[0])
    deny = committee.denyRelease(rid, REASONS["KosPolicyMismatch"], sender=members[1])
    last = committee.releaseShares(rid, envelopes, sender=members[2])
    assert len([e for e in last.events if e.event_name == "TokenIssued"]) == 5
    rid3 = d3.request()
    env = d3.envelope(0, 1, rid=rid3, share=d3.wrong(0, 1))
    proof = d3.prove(env, 0, 1)
    claim = committee.reportShareFailure(rid3, d3.ds, 1, members[2], 1, sender=d3.holders[0])
    with capsys.disabled():
        print(f"\nKosCommittee gas ({suite.name}: sealed share {share_len} B, sealed envelope {env_len} B): "
              f"startEpoch m=5 {start.gas_used}, registerDeal 3x5 {d3.tx.gas_used}, 5x5 {d5.tx.gas_used}, "
              f"releaseShares n=5 {first.gas_used} (t_k-th, 5 tokens: {last.gas_used}), denyRelease "
              f"{deny.gas_used}, proveWrongShare {proof.gas_used} (proof of {len(d3.deal.proof(0, 1))} "
              f"nodes), reportShareFailure {claim.gas_used}")
    assert proof.gas_used < 150_000 and claim.gas_used < 80_000
