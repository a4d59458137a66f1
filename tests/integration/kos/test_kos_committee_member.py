"""KOS committee members against anvil with the real contracts: the owner's deal (the store's
``KosTarget``), each member's release (envelopes that open with each holder's key and verify),
denials with the policy's reason, restarts, and the legacy replica leaving committee datasets alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from kos.orchestrator import Outcome
from kos.service import KosService, build
from kos.settings import KosSettings
from shardkey.chain.committee import recover_signer
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import DatasetParams, DatasetStatus, RequestStatus
from shardkey.client.kos_target import KosTarget, kos_target
from shardkey.client.store import StoreError, _register_deal
from shardkey.crypto.committee import (
    ShareSlot,
    VerifiedShare,
    combine_shares,
    commitment_rows,
    commitments_root,
    deal,
    share_commitment,
    verify_share,
)
from shardkey.crypto.committee_envelope import committee_marker
from shardkey.crypto.hpke import HpkePrivateKey, committee_release_info, committee_share_info, seal
from shardkey.keys import save_hpke_keystore, save_plain_account_key
from shardkey.policy import DenialReason
from shardkey.service.exits import IdentityError
from tests.integration.kos.conftest import Dataset, World

MEMBERS, THRESHOLD = 3, 2
PASSPHRASE = "member passphrase"  # noqa: S105 - a test keystore's


class Committee:
    """Epoch 1 of three members (threshold 2) on the world's deployment, committee datasets."""

    def __init__(self, world: World, tmp: Path) -> None:
        self.world = world
        self.tmp = tmp
        self.chain = world.chain
        assert self.chain.committee is not None
        self.contract = self.chain.committee
        self.accounts: list[LocalAccount] = [world.dev.account(f"member-{i + 1}") for i in range(MEMBERS)]
        self.keys = [HpkePrivateKey.generate(os.urandom) for _ in range(MEMBERS)]
        self.contract.start_epoch(world.dev.accounts["admin"], [a.address for a in self.accounts],
                                  [k.public_key_bytes() for k in self.keys], THRESHOLD)
        self.start = world.dev.deployment.start_block

    def params(self, dataset_holders: tuple[str, ...]) -> DatasetParams:
        return DatasetParams(merkle_root=os.urandom(32), k=2, p=1, shard_size=1024, plaintext_length=2048,
                             shard_count=3, threshold=2, shard_holders=dataset_holders,
                             fragment_holders=dataset_holders)

    def register(self, target: KosTarget | None = None) -> tuple[Dataset, KosTarget, bytes]:
        """Register a dataset whose slots come from ``target`` (the owner's); not yet dealt."""
        world = self.world
        target = target or kos_target(self.chain)
        salt = os.urandom(32)
        dataset_id = self.chain.datasets.compute_dataset_id(world.owner.address, salt)
        wrap_keys = [os.urandom(32) for _ in world.holders]
        slots = [target.slot(dataset_id, j, bytearray(w)) for j, w in enumerate(wrap_keys)]
        addresses = tuple(h.address for h in world.holders)
        policy = world.policy()
        self.chain.datasets.register(world.owner, salt, self.params(addresses), policy,
                                     [os.urandom(32) for _ in range(3)], slots,
                                     [os.urandom(32) for _ in world.holders])
        return Dataset(dataset_id, world.holders, wrap_keys, policy), target, salt

    def activate(self, dataset: Dataset) -> None:
        for holder in dataset.holders:
            self.chain.datasets.confirm_custody(holder, dataset.dataset_id)

    def dataset(self) -> Dataset:
        """A committee dataset dealt as ``store`` deals it, and Active."""
        dataset, target, _ = self.register()
        assert target.mode == "committee"
        target.register_deal(self.chain, self.world.owner, dataset.dataset_id, 1,
                             [h.address for h in dataset.holders], os.urandom)
        self.activate(dataset)
        return dataset

    def member(self, i: int, state: str | None = None) -> KosService:
        return KosService(self.chain, self.accounts[i], self.keys[i], self.tmp / (state or f"member-{i + 1}"),
                          confirmations=0, committee_member=True)

    def verified(self, request_id: int, dataset: Dataset, member: int, j: int,
                 sealed: bytes) -> VerifiedShare:
        """What holder ``j`` makes of member ``member``'s envelope for it (raises if it is wrong)."""
        holder = dataset.holders[j].address
        info = committee_release_info(self.world.dev.client.chain_id, request_id, dataset.dataset_id, holder,
                                      self.accounts[member].address)
        opened = self.world.dev.holder_keys[f"holder-{j + 1}"].open(sealed, info)
        record = self.contract.deal_record(dataset.dataset_id, 1, self.start)
        slot = ShareSlot(chain_id=self.world.dev.client.chain_id, committee=self.contract.address,
                         request_id=request_id, dataset_id=dataset.dataset_id, holder=holder,
                         member=self.accounts[member].address, member_index=member, epoch=1)
        return verify_share(opened, slot, record.commitment(j, member, MEMBERS), recover_signer)


@pytest.fixture
def committee(world: World, tmp_path: Path) -> Committee:
    return Committee(world, tmp_path)


def _approved(committee: Committee, dataset: Dataset) -> int:
    request_id = committee.world.request(dataset)
    committee.world.approve(request_id)
    return request_id


def test_the_owners_deal_registers_a_root_every_member_can_check_and_open(committee: Committee) -> None:
    dataset = committee.dataset()
    chain_id = committee.world.dev.client.chain_id
    epoch, root = committee.contract.deal(dataset.dataset_id, 1)
    record = committee.contract.deal_record(dataset.dataset_id, 1, committee.start)
    holders = [h.address for h in dataset.holders]
    assert (epoch, record.committee_epoch, record.root) == (1, 1, root)
    assert commitments_root(holders, commitment_rows(record.commitments, len(holders), MEMBERS)) == root
    assert committee.chain.datasets.dataset(dataset.dataset_id).status == DatasetStatus.ACTIVE
    for j, holder in enumerate(holders):
        shares = []
        for i, member in enumerate(committee.accounts):
            share = committee.keys[i].open(record.sealed_share(j, i, MEMBERS),
                                           committee_share_info(chain_id, dataset.dataset_id, holder,
                                                                member.address, 1))
            assert share_commitment(chain_id, dataset.dataset_id, holder, i, 1, share) == \
                record.commitment(j, i, MEMBERS)
            shares.append(VerifiedShare(member.address, i, share))
        assert combine_shares(shares[1:], THRESHOLD) == dataset.wrap_keys[j]


def test_a_refused_deal_revokes_the_dataset_the_store_just_registered(committee: Committee) -> None:
    dataset, target, _ = committee.register()
    holders = [h.address for h in dataset.holders]
    committee.activate(dataset)  # no longer pending: the committee refuses a deal now
    with pytest.raises(StoreError, match=r"committee deal .* was refused.*revoked"):
        _register_deal(committee.chain, committee.world.owner, target, dataset.dataset_id, holders,
                       os.urandom)
    assert committee.chain.datasets.dataset(dataset.dataset_id).status == DatasetStatus.REVOKED
    assert not target._keys  # the kept wrap keys were wiped


def test_members_release_shares_each_holder_opens_and_the_threshold_issues(committee: Committee) -> None:
    dataset = committee.dataset()
    request_id = _approved(committee, dataset)

    first = committee.member(0)
    assert first.poll().outcomes == {request_id: Outcome.ISSUED}
    assert first.poll().outcomes == {request_id: Outcome.DROPPED}  # its release is on chain: done
    assert len(first.pending) == 0
    (release,) = committee.contract.releases(request_id, committee.start)
    assert release.released and release.member == committee.accounts[0].address
    assert len(release.sealed_envelopes) == len(dataset.holders)
    assert committee.chain.retrievals.request(request_id).tokens_issued == 0  # one of two

    assert committee.member(2).poll().outcomes == {request_id: Outcome.ISSUED}
    assert committee.contract.release_counts(request_id) == (2, 0)
    assert committee.chain.retrievals.request(request_id).tokens_issued == len(dataset.holders)
    tokens = committee.world.token_events(request_id)
    assert {bytes(e["args"]["token"]) for e in tokens} == {committee_marker(1)}
    by_member = {r.member: r for r in committee.contract.releases(request_id, committee.start)}
    for j in range(len(dataset.holders)):
        shares = [committee.verified(request_id, dataset, i, j, by_member[committee.accounts[i].address]
                                     .sealed_envelopes[j]) for i in (0, 2)]
        assert combine_shares(shares, THRESHOLD) == dataset.wrap_keys[j]
    # the third member releases too: a holder given a wrong share needs another member's
    assert committee.member(1).poll().outcomes == {request_id: Outcome.ISSUED}
    assert committee.contract.release_counts(request_id) == (3, 0)


def test_a_member_denies_an_unmet_policy_with_its_reason(committee: Committee) -> None:
    dataset = committee.dataset()
    request_id = committee.world.request(dataset)
    outsider = committee.world.dev.account("someone-else")
    committee.chain.datasets.update_policy(committee.world.owner, dataset.dataset_id,
                                           committee.world.policy(requesters=(outsider.address,)))
    committee.world.approve(request_id)

    assert committee.member(1).poll().outcomes == {request_id: Outcome.DENIED}
    (denial,) = committee.contract.releases(request_id, committee.start)
    assert (denial.released, denial.reason, denial.member) == \
        (False, int(DenialReason.KOS_POLICY_MISMATCH), committee.accounts[1].address)
    assert committee.contract.release_state(request_id, committee.accounts[1].address) == 2
    assert committee.chain.retrievals.request(request_id).status == RequestStatus.APPROVED  # 1 <= m - t_k

    assert committee.member(0).poll().outcomes == {request_id: Outcome.DENIED}
    req = committee.chain.retrievals.request(request_id)
    assert (req.status, req.denial_reason) == (RequestStatus.DENIED, int(DenialReason.KOS_POLICY_MISMATCH))
    assert committee.world.token_events(request_id) == []


def test_a_member_restarted_drops_the_request_it_already_released(committee: Committee) -> None:
    dataset = committee.dataset()
    request_id = _approved(committee, dataset)
    assert committee.member(0).poll().outcomes == {request_id: Outcome.ISSUED}
    block = committee.world.dev.client.block_number()

    again = committee.member(0, state="member-1-restarted")  # replays the approval from the start block
    assert again.poll().outcomes == {request_id: Outcome.DROPPED}
    assert len(again.pending) == 0
    assert committee.contract.release_counts(request_id) == (1, 0)
    logs = committee.contract.contract.get_logs("SharesReleased", block + 1, requestId=request_id)
    assert logs == []
    with pytest.raises(TransactionReverted):  # and the contract would refuse a second one anyway
        committee.contract.submit_release(committee.accounts[0], request_id,
                                          [b"x"] * len(dataset.holders))


def test_a_share_not_matching_its_commitment_is_denied_as_an_invalid_wrap_key(committee: Committee) -> None:
    world = committee.world
    dataset, _, _ = committee.register()
    holders = [h.address for h in dataset.holders]
    epoch = committee.contract.committee()
    chain_id = world.dev.client.chain_id
    made = deal(chain_id, dataset.dataset_id, 1, holders, dataset.wrap_keys, THRESHOLD, MEMBERS, os.urandom)
    commitments = made.flat_commitments()
    commitments[2 * MEMBERS + 1] = os.urandom(32)  # holder 2, member 1: the owner dealt it wrong
    sealed = [seal(epoch.hpke_public_keys[i], made.shares[j][i],
                   committee_share_info(chain_id, dataset.dataset_id, h, epoch.members[i], 1))
              for j, h in enumerate(holders) for i in range(MEMBERS)]
    committee.contract.register_deal(world.owner, dataset.dataset_id, 1, commitments, sealed)
    committee.activate(dataset)
    request_id = _approved(committee, dataset)

    assert committee.member(1).poll().outcomes == {request_id: Outcome.DENIED}
    (denial,) = committee.contract.releases(request_id, committee.start)
    assert denial.reason == int(DenialReason.KOS_WRAP_KEY_INVALID)
    assert committee.member(0).poll().outcomes == {request_id: Outcome.ISSUED}  # its shares check


def test_the_legacy_replica_and_the_members_each_leave_the_others_datasets(committee: Committee) -> None:
    world = committee.world
    mine, theirs = committee.dataset(), world.dataset()
    committee_request, legacy_request = _approved(committee, mine), _approved(committee, theirs)

    replica = world.replica()
    report = replica.poll()
    assert report.outcomes[committee_request] == Outcome.DROPPED
    assert report.outcomes[legacy_request] == Outcome.ISSUED
    world.assert_tokens_open(legacy_request, theirs)
    member = committee.member(0)
    report = member.poll()
    assert report.outcomes == {committee_request: Outcome.ISSUED, legacy_request: Outcome.DROPPED}
    replica.poll(), member.poll()  # settlements seen at depth: nothing left for either
    assert len(replica.pending) == 0 and len(member.pending) == 0
    assert committee.contract.release_counts(legacy_request) == (0, 0)
    assert world.chain.retrievals.request(committee_request).tokens_issued == 0


def _member_settings(world: World, folder: Path, account: LocalAccount, key: HpkePrivateKey) -> KosSettings:
    folder.mkdir()
    (folder / "deployment.json").write_text(json.dumps(world.dev.deployment.to_json()))
    (folder / "passphrase").write_text(PASSPHRASE)
    save_plain_account_key(folder / "account.key", account)
    save_hpke_keystore(folder / "hpke.json", key, PASSPHRASE)
    return KosSettings(deployment=folder / "deployment.json", account_key=folder / "account.key",
                       hpke_keystore=folder / "hpke.json", passphrase_file=folder / "passphrase",
                       state_dir=folder / "state", confirmations=0, committee_member=True)


def test_member_start_up_refuses_no_epoch_a_non_member_and_a_key_not_its_own(world: World,
                                                                             tmp_path: Path) -> None:
    account, key = world.dev.account("member-1"), HpkePrivateKey.generate(os.urandom)
    with pytest.raises(IdentityError, match="KOS committee member: the KosCommittee has no epoch yet"):
        build(_member_settings(world, tmp_path / "early", account, key))
    committee = Committee(world, tmp_path)  # epoch 1: member-1..3 with their own keys
    with pytest.raises(IdentityError, match=r"HPKE keystore's public key is not member .*'s key in "
                                            r"committee epoch 1"):
        build(_member_settings(world, tmp_path / "wrong-key", account, key))
    outsider = world.dev.account("outsider")
    with pytest.raises(IdentityError,
                       match=f"account {outsider.address} is not a member of committee epoch 1"):
        build(_member_settings(world, tmp_path / "outsider", outsider, committee.keys[0]))

    service = build(_member_settings(world, tmp_path / "good", committee.accounts[0], committee.keys[0]))
    assert service.member is not None and service.member.index_in(1) == 0
    assert not world.chain.retrievals.has_kos_role(committee.accounts[0].address)  # it needs none

    # epoch 2 retires member-1: it still starts (it serves the datasets dealt to epoch 1); the
    # outsider is still refused, now for every epoch
    committee.contract.start_epoch(world.dev.accounts["admin"], [a.address for a in committee.accounts[1:]],
                                   [k.public_key_bytes() for k in committee.keys[1:]], THRESHOLD)
    retired = build(_member_settings(world, tmp_path / "retired", committee.accounts[0], committee.keys[0]))
    assert retired.member is not None and retired.member.index_in(2) is None
    with pytest.raises(IdentityError, match=r"is not a member of any committee epoch \(1\.\.2\)"):
        build(_member_settings(world, tmp_path / "outsider-2", outsider, committee.keys[0]))
