"""A committee member's release logic without a chain: the owner's real deal (shares, commitments,
HPKE seals to each member), the member opening, checking, signing and sealing its shares, and
the holder's checks on what it gets (``verify_share``, ``combine_shares``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from kos.member import CommitteeMember, ShareInvalid, ShareOpener
from shardkey.chain.committee import CommitteeEpoch, DealRecord, recover_signer
from shardkey.chain.model import FragmentDeal, RequestInfo, RequestPurpose, RequestStatus
from shardkey.crypto.committee import ShareSlot, combine_shares, deal, verify_share
from shardkey.crypto.committee_envelope import committee_marker
from shardkey.crypto.errors import HpkeDecryptionError, ShareCommitmentMismatch
from shardkey.crypto.hpke import HpkePrivateKey, committee_release_info, committee_share_info, seal
from shardkey.faults import CORRUPT_SHARES_ENV

CHAIN_ID = 31337
COMMITTEE_ADDRESS = "0x" + "c0" * 20
EPOCH = 1
THRESHOLD = 2


@dataclass
class ChainReads:
    """The two committee reads a member makes while building envelopes (epoch, address)."""

    epoch: CommitteeEpoch
    address: str = COMMITTEE_ADDRESS

    def committee(self, epoch: int | None = None) -> CommitteeEpoch:
        assert epoch in (None, self.epoch.epoch)
        return self.epoch


@dataclass
class Setup:
    members: list[LocalAccount]
    member_keys: list[HpkePrivateKey]
    holders: list[LocalAccount]
    holder_keys: dict[str, HpkePrivateKey]
    wrap_keys: list[bytes]
    record: DealRecord
    fragments: FragmentDeal
    request: RequestInfo
    reads: ChainReads

    def holder_key(self, holder: str) -> bytes:
        return self.holder_keys[holder].public_key_bytes()

    def member(self, i: int, key: HpkePrivateKey | None = None) -> CommitteeMember:
        return CommitteeMember(self.reads, self.members[i],  # type: ignore[arg-type]
                               ShareOpener(key or self.member_keys[i], CHAIN_ID), CHAIN_ID, 0)

    def slot(self, i: int, j: int) -> ShareSlot:
        return ShareSlot(chain_id=CHAIN_ID, committee=COMMITTEE_ADDRESS, request_id=self.request.request_id,
                         dataset_id=self.request.dataset_id, holder=self.holders[j].address,
                         member=self.members[i].address, member_index=i, epoch=EPOCH)

    def open_envelope(self, i: int, j: int, sealed: bytes) -> bytes:
        holder = self.holders[j].address
        info = committee_release_info(CHAIN_ID, self.request.request_id, self.request.dataset_id, holder,
                                      self.members[i].address)
        return self.holder_keys[holder].open(sealed, info)


@pytest.fixture
def setup() -> Setup:
    members = [Account.create() for _ in range(3)]
    member_keys = [HpkePrivateKey.generate(os.urandom) for _ in members]
    holders = [Account.create() for _ in range(2)]
    holder_keys = {h.address: HpkePrivateKey.generate(os.urandom) for h in holders}
    dataset_id = os.urandom(32)
    wrap_keys = [os.urandom(32) for _ in holders]
    addresses = [h.address for h in holders]
    made = deal(CHAIN_ID, dataset_id, EPOCH, addresses, wrap_keys, THRESHOLD, len(members), os.urandom)
    sealed = [seal(member_keys[i].public_key_bytes(), made.shares[j][i],
                   committee_share_info(CHAIN_ID, dataset_id, addresses[j], members[i].address, EPOCH))
              for j in range(len(holders)) for i in range(len(members))]
    record = DealRecord(dataset_id=dataset_id, fragment_epoch=1, committee_epoch=EPOCH, root=made.root,
                        commitments=tuple(made.flat_commitments()), sealed_shares=tuple(sealed),
                        block_number=1)
    fragments = FragmentDeal(dataset_id=dataset_id, epoch=1, threshold=1, holders=tuple(addresses),
                             sealed_wrap_keys=tuple(committee_marker(EPOCH) for _ in holders),
                             fragment_roots=tuple(os.urandom(32) for _ in holders), block_number=1)
    request = RequestInfo(request_id=7, dataset_id=dataset_id, requester=members[0].address,
                          policy_version=1, status=RequestStatus.APPROVED, denial_reason=0,
                          purpose=RequestPurpose.RETRIEVAL,
                          requested_at=1, approved_at=2, deadline=3, tokens_issued=0, deliveries=0,
                          fragment_epoch=1, ephemeral_key_hash=b"\0" * 32)
    reads = ChainReads(CommitteeEpoch(epoch=EPOCH, members=tuple(m.address for m in members),
                                      hpke_public_keys=tuple(k.public_key_bytes() for k in member_keys),
                                      threshold=THRESHOLD))
    return Setup(members, member_keys, holders, holder_keys, wrap_keys, record, fragments, request, reads)


def test_each_holder_verifies_every_members_share_and_any_two_rebuild_its_wrap_key(setup: Setup) -> None:
    envelopes = {i: setup.member(i).envelopes(setup.request, setup.fragments, setup.record,
                                              setup.holder_key)
                 for i in range(3)}
    for j, holder in enumerate(setup.holders):
        verified = [verify_share(setup.open_envelope(i, j, envelopes[i][j]), setup.slot(i, j),
                                 setup.record.commitment(j, i, 3), recover_signer) for i in range(3)]
        for pair in ([0, 1], [1, 2], [0, 2]):
            assert combine_shares([verified[i] for i in pair], THRESHOLD) == setup.wrap_keys[j]
        assert combine_shares(verified[:1], 1) != setup.wrap_keys[j]  # one share alone says nothing
        assert holder.address in setup.fragments.holders


def test_an_envelope_is_sealed_to_its_own_holder_only(setup: Setup) -> None:
    sealed = setup.member(0).envelopes(setup.request, setup.fragments, setup.record,
                                       setup.holder_key)
    with pytest.raises(HpkeDecryptionError):
        setup.open_envelope(0, 1, sealed[0])  # holder 1 cannot open holder 0's envelope


def test_a_share_sealed_to_another_member_does_not_open(setup: Setup) -> None:
    wrong_key = HpkePrivateKey.generate(os.urandom)
    with pytest.raises(ShareInvalid, match="does not open") as caught:
        setup.member(1, wrong_key).envelopes(setup.request, setup.fragments, setup.record,
                                             setup.holder_key)
    assert caught.value.position == 0


def test_a_share_not_matching_its_commitment_is_refused(setup: Setup) -> None:
    commitments = list(setup.record.commitments)
    commitments[1 * 3 + 2] = os.urandom(32)  # holder 1, member 2
    record = DealRecord(**{**setup.record.__dict__, "commitments": tuple(commitments)})
    setup.member(0).envelopes(setup.request, setup.fragments, record, setup.holder_key)
    with pytest.raises(ShareInvalid, match="does not match its commitment") as caught:
        setup.member(2).envelopes(setup.request, setup.fragments, record,
                                  setup.holder_key)
    assert caught.value.position == 1


def test_a_deal_with_the_wrong_number_of_entries_is_refused(setup: Setup) -> None:
    record = DealRecord(**{**setup.record.__dict__, "commitments": setup.record.commitments[:-1]})
    with pytest.raises(ShareInvalid, match="5 commitments, 3 x 2 expected"):
        setup.member(0).envelopes(setup.request, setup.fragments, record,
                                  setup.holder_key)


def test_corrupt_shares_hook_makes_a_provably_wrong_share_for_the_named_holder_only(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    target = setup.holders[1].address
    monkeypatch.setenv(CORRUPT_SHARES_ENV, f" {target.lower()} ,")
    sealed = setup.member(0).envelopes(setup.request, setup.fragments, setup.record,
                                       setup.holder_key)
    verify_share(setup.open_envelope(0, 0, sealed[0]), setup.slot(0, 0), setup.record.commitment(0, 0, 3),
                 recover_signer)
    with pytest.raises(ShareCommitmentMismatch) as caught:
        verify_share(setup.open_envelope(0, 1, sealed[1]), setup.slot(0, 1), setup.record.commitment(1, 0, 3),
                     recover_signer)
    assert caught.value.member == setup.members[0].address  # signed by it: provable on chain


def test_key_problem_names_a_wrong_key_and_a_non_member(setup: Setup) -> None:
    assert setup.member(1).key_problem(EPOCH) is None
    assert "not member" in str(setup.member(1, HpkePrivateKey.generate(os.urandom)).key_problem(EPOCH))
    outsider = CommitteeMember(setup.reads, Account.create(),  # type: ignore[arg-type]
                               ShareOpener(setup.member_keys[0], CHAIN_ID), CHAIN_ID, 0)
    assert outsider.index_in(EPOCH) is None
    assert "is not a member of committee epoch 1" in str(outsider.key_problem(EPOCH))


def test_a_deal_to_another_committee_epoch_than_the_marker_is_refused(setup: Setup) -> None:
    record = DealRecord(**{**setup.record.__dict__, "committee_epoch": 2})
    with pytest.raises(ShareInvalid, match="deal is to committee epoch 2, the dataset's marker names 1"):
        setup.member(0).envelopes(setup.request, setup.fragments, record, setup.holder_key)
