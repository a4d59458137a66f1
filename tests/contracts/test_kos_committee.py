"""KosCommittee on anvil: epochs and their validation, and the on-chain wrong-share proof fed by
Python-built deals and envelopes (shardkey.crypto.committee) signed with eth-account."""

from __future__ import annotations

import os

import pytest
from contract_helpers import reverts, view_reverts
from eth_account import Account

from shardkey.chain.committee import sign_envelope
from shardkey.crypto import committee as kc
from shardkey.crypto.committee_envelope import ShareEnvelope, envelope_digest

DS = bytes.fromhex("5a" * 32)
X25519_KEY = b"\x11" * 32
HYBRID_KEY = b"\x22" * 1216


@pytest.fixture(scope="session")
def committee(project, admin):
    return admin.deploy(project.KosCommittee, admin)


@pytest.fixture(scope="session")
def members(accounts, chain):
    ms = [accounts.generate_test_account() for _ in range(4)]
    for m in ms:
        chain.provider.set_balance(m.address, 10**21)
    return ms


@pytest.fixture(scope="session")
def epoch1(committee, admin, members):
    """Epoch 1: members 0..2, threshold 2."""
    tx = committee.startEpoch([m.address for m in members[:3]], [X25519_KEY, HYBRID_KEY, X25519_KEY], 2,
                              sender=admin)
    return tx


def _signer(member):
    return Account.from_key(member.private_key)


class Setup:
    """One dataset dealt to epoch 1 for fragment holders ``holders``, and signed envelopes."""

    def __init__(self, chain, committee, members, holders) -> None:
        self.chain_id = chain.chain_id
        self.committee = committee
        self.members = members
        self.holders = holders
        self.keys = [os.urandom(32) for _ in holders]
        self.deal = kc.deal(self.chain_id, DS, 1, [h.address for h in holders], self.keys, 2, 3, os.urandom)

    def envelope(self, j: int, i: int, *, share: bytes | None = None, request_id: int = 7,
                 signer=None, member=None) -> ShareEnvelope:
        member = member or self.members[i]
        env = ShareEnvelope(request_id, DS, bytes.fromhex(self.holders[j].address[2:]),
                            bytes.fromhex(member.address[2:]), 1,
                            self.deal.shares[j][i] if share is None else share)
        who = signer or member
        if who is member:
            return sign_envelope(_signer(member), env, self.chain_id, str(self.committee.address))
        digest = envelope_digest(env, self.chain_id, str(self.committee.address))
        return env.signed(bytes(_signer(who).unsafe_sign_hash(digest).signature))

    def wrong(self, j: int, i: int) -> bytes:
        s = self.deal.shares[j][i]
        return bytes([s[0] ^ 0x80]) + s[1:]

    def prove(self, env: ShareEnvelope, j: int, i: int, *, proof=None, commitment=None, root=None,
              sender=None):
        return self.committee.proveWrongShare(
            env.as_tuple(), env.signature, commitment or self.deal.commitments[j][i],
            self.deal.proof(j, i) if proof is None else proof, root or self.deal.root,
            sender=sender or self.holders[j])


@pytest.fixture
def setup(chain, committee, members, active_holders, epoch1):
    return Setup(chain, committee, members, active_holders[:2])


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


# --- the wrong-share proof ------------------------------------------------------------------


def test_python_and_solidity_hashes_agree(setup, committee):
    env = setup.envelope(1, 2, request_id=2**255 + 3)
    assert bytes(committee.shareDigest(env.as_tuple())) == kc.envelope_digest(
        env, setup.chain_id, str(committee.address))
    holder = setup.holders[1].address
    assert bytes(committee.shareCommitment(DS, holder, 2, 1, env.share)) == setup.deal.commitments[1][2]
    assert bytes(committee.commitmentLeaf(holder, 2, setup.deal.commitments[1][2])) == kc.commitment_leaf(
        holder, 2, setup.deal.commitments[1][2])


def test_a_signed_wrong_share_is_proven_and_names_the_member(setup, committee, members):
    env = setup.envelope(0, 1, share=setup.wrong(0, 1))
    tx = setup.prove(env, 0, 1)
    assert tx.events == [committee.ShareFaultProven(7, DS, members[1], setup.holders[0], 1, setup.deal.root)]
    assert committee.shareFaultProven(7, members[1], setup.holders[0])
    assert not committee.shareFaultProven(7, members[0], setup.holders[0])
    with reverts("ShareFaultAlreadyRecorded", 7, members[1], setup.holders[0]):
        setup.prove(env, 0, 1)


def test_a_correct_share_is_refused(setup, members):
    with reverts("ShareMatchesCommitment", members[2]):
        setup.prove(setup.envelope(1, 2), 1, 2)


def test_a_forged_signature_is_refused(setup, members):
    # signed by member 0 for member 1's slot, and by an outsider
    for forger in (members[0], members[3]):
        env = setup.envelope(0, 1, share=setup.wrong(0, 1), signer=forger)
        with reverts("ShareSignatureInvalid", members[1]):
            setup.prove(env, 0, 1)
    env = setup.envelope(0, 1, share=setup.wrong(0, 1))
    tampered = env.signed(env.signature[:10] + bytes([env.signature[10] ^ 1]) + env.signature[11:])
    with reverts("ShareSignatureInvalid", members[1]):
        setup.prove(tampered, 0, 1)


def test_a_bad_merkle_proof_is_refused(setup):
    env = setup.envelope(0, 1, share=setup.wrong(0, 1))
    c = setup.deal.commitments[0][1]
    with reverts("ShareProofInvalid", c, setup.deal.root):
        setup.prove(env, 0, 1, proof=setup.deal.proof(0, 2))
    # another member's (or holder's) commitment cannot be passed off as this member's
    other = setup.deal.commitments[0][2]
    with reverts("ShareProofInvalid", other, setup.deal.root):
        setup.prove(env, 0, 1, commitment=other, proof=setup.deal.proof(0, 2))
    other = setup.deal.commitments[1][1]
    with reverts("ShareProofInvalid", other, setup.deal.root):
        setup.prove(env, 0, 1, commitment=other, proof=setup.deal.proof(1, 1))


def test_a_non_member_or_other_caller_is_refused(setup, members, outsider):
    env = setup.envelope(0, 0, member=members[3], share=b"\x01" * 32)
    with reverts("CommitteeNotMember", 1, members[3]):
        setup.prove(env, 0, 0)
    env = setup.envelope(0, 1, share=setup.wrong(0, 1))
    with reverts("ShareCallerNotHolder", outsider, setup.holders[0]):
        setup.prove(env, 0, 1, sender=outsider)


def test_share_failure_claims(setup, committee, members, outsider):
    tx = committee.reportShareFailure(7, DS, 1, members[2], 2, sender=setup.holders[0])
    assert tx.events == [committee.ShareFailureReported(7, DS, members[2], setup.holders[0], 2)]
    assert not committee.shareFaultProven(7, members[2], setup.holders[0])
    with reverts("ShareFaultAlreadyRecorded", 7, members[2], setup.holders[0]):
        committee.reportShareFailure(7, DS, 1, members[2], 1, sender=setup.holders[0])
    for kind in (0, 3):
        with reverts("ShareInvalidFailureKind", kind):
            committee.reportShareFailure(7, DS, 1, members[2], kind, sender=setup.holders[0])
    with reverts("CommitteeNotMember", 1, members[3]):
        committee.reportShareFailure(7, DS, 1, members[3], 1, sender=setup.holders[0])
    # a claim does not stop the proof of the same member's wrong share
    setup.prove(setup.envelope(0, 2, share=setup.wrong(0, 2)), 0, 2)
    assert committee.shareFaultProven(7, members[2], setup.holders[0])


@pytest.mark.parametrize("m", [3, 5])
def test_committee_gas(committee, admin, accounts, chain, m, capsys):
    """Gas figures for docs/CONTRACTS.md: an epoch of m hybrid-key members; a proof; a claim."""
    ms = [accounts.generate_test_account() for _ in range(m)]
    tx = committee.startEpoch([a.address for a in ms], [HYBRID_KEY] * m, 2, sender=admin)
    epoch = tx.events.filter(committee.CommitteeEpochStarted)[0].epoch
    holders = [accounts.generate_test_account() for _ in range(2)]
    for a in holders + ms:
        chain.provider.set_balance(a.address, 10**21)
    deal = kc.deal(chain.chain_id, DS, epoch, [h.address for h in holders], [os.urandom(32)] * 2, 2, m,
                   os.urandom)
    env = ShareEnvelope(7, DS, bytes.fromhex(holders[0].address[2:]), bytes.fromhex(ms[1].address[2:]), epoch,
                        bytes(32))
    env = sign_envelope(_signer(ms[1]), env, chain.chain_id, str(committee.address))
    proof = committee.proveWrongShare(env.as_tuple(), env.signature, deal.commitments[0][1], deal.proof(0, 1),
                                      deal.root, sender=holders[0])
    claim = committee.reportShareFailure(7, DS, epoch, ms[2], 1, sender=holders[0])
    with capsys.disabled():
        print(f"\nKosCommittee gas, m={m}: startEpoch {tx.gas_used}, proveWrongShare {proof.gas_used} "
              f"(proof of {len(deal.proof(0, 1))} nodes), reportShareFailure {claim.gas_used}")
    assert proof.gas_used < 120_000 and claim.gas_used < 80_000
