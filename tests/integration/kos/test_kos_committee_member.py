"""KOS committee members against anvil with the real contracts: the owner's deal (the store's
``KosTarget``), each member's release (envelopes that open with each holder's key and verify),
denials with the policy's reason, restarts, and requests for datasets the members do not serve."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from kos.orchestrator import Outcome
from kos.service import build
from kos.settings import KosSettings
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import DatasetStatus, RequestStatus
from shardkey.client.store import StoreError, _register_deal
from shardkey.crypto.committee import (
    VerifiedShare,
    combine_shares,
    commitment_rows,
    commitments_root,
    share_commitment,
)
from shardkey.crypto.committee_envelope import UNSEALABLE_ENVELOPE, committee_marker
from shardkey.crypto.hpke import HpkePrivateKey, committee_share_info
from shardkey.keys import save_hpke_keystore, save_plain_account_key
from shardkey.policy import DenialReason
from shardkey.service.exits import IdentityError
from tests.integration.kos.conftest import MEMBERS, THRESHOLD, Dataset, World

PASSPHRASE = "member passphrase"  # noqa: S105 - a test keystore's


def _approved(world: World, dataset: Dataset) -> int:
    request_id = world.request(dataset)
    world.approve(request_id)
    return request_id


def test_the_owners_deal_registers_a_root_every_member_can_check_and_open(world: World) -> None:
    dataset = world.dataset()
    chain_id = world.dev.client.chain_id
    epoch, root = world.committee.deal(dataset.dataset_id, 1)
    record = world.committee.deal_record(dataset.dataset_id, 1, world.start)
    holders = [h.address for h in dataset.holders]
    assert (epoch, record.committee_epoch, record.root) == (1, 1, root)
    assert commitments_root(holders, commitment_rows(record.commitments, len(holders), MEMBERS)) == root
    assert world.chain.datasets.dataset(dataset.dataset_id).status == DatasetStatus.ACTIVE
    for j, holder in enumerate(holders):
        shares = []
        for i, member in enumerate(world.members):
            share = world.member_keys[i].open(record.sealed_share(j, i, MEMBERS),
                                           committee_share_info(chain_id, dataset.dataset_id, holder,
                                                                member.address, 1))
            assert share_commitment(chain_id, dataset.dataset_id, holder, i, 1, share) == \
                record.commitment(j, i, MEMBERS)
            shares.append(VerifiedShare(member.address, i, share))
        assert combine_shares(shares[1:], THRESHOLD) == dataset.wrap_keys[j]


def test_a_refused_deal_revokes_the_dataset_the_store_just_registered(world: World) -> None:
    dataset, target = world.register()
    holders = [h.address for h in dataset.holders]
    world.activate(dataset)  # no longer pending: the committee refuses a deal now
    with pytest.raises(StoreError, match=r"committee deal .* was refused.*revoked"):
        _register_deal(world.chain, world.owner, target, dataset.dataset_id, holders,
                       os.urandom)
    assert world.chain.datasets.dataset(dataset.dataset_id).status == DatasetStatus.REVOKED
    assert not target._keys  # the kept wrap keys were wiped


def test_members_release_shares_each_holder_opens_and_the_threshold_issues(world: World) -> None:
    dataset = world.dataset()
    request_id = _approved(world, dataset)

    first = world.member(0)
    assert first.poll().outcomes == {request_id: Outcome.ISSUED}
    assert first.poll().outcomes == {request_id: Outcome.DROPPED}  # its release is on chain: done
    assert len(first.pending) == 0
    (release,) = world.committee.releases(request_id, world.start)
    assert release.released and release.member == world.members[0].address
    assert len(release.sealed_envelopes) == len(dataset.holders)
    assert world.chain.retrievals.request(request_id).tokens_issued == 0  # one of two

    assert world.member(2).poll().outcomes == {request_id: Outcome.ISSUED}
    assert world.committee.release_counts(request_id) == (2, 0)
    assert world.chain.retrievals.request(request_id).tokens_issued == len(dataset.holders)
    tokens = world.token_events(request_id)
    assert {bytes(e["args"]["token"]) for e in tokens} == {committee_marker(1)}
    by_member = {r.member: r for r in world.committee.releases(request_id, world.start)}
    for j in range(len(dataset.holders)):
        shares = [world.verified(request_id, dataset, i, j, by_member[world.members[i].address]
                                     .sealed_envelopes[j]) for i in (0, 2)]
        assert combine_shares(shares, THRESHOLD) == dataset.wrap_keys[j]
    # the third member releases too: a holder given a wrong share needs another member's
    assert world.member(1).poll().outcomes == {request_id: Outcome.ISSUED}
    assert world.committee.release_counts(request_id) == (3, 0)


def test_a_member_denies_an_unmet_policy_with_its_reason(world: World) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    outsider = world.dev.account("someone-else")
    world.chain.datasets.update_policy(world.owner, dataset.dataset_id,
                                           world.policy(requesters=(outsider.address,)))
    world.approve(request_id)

    assert world.member(1).poll().outcomes == {request_id: Outcome.DENIED}
    (denial,) = world.committee.releases(request_id, world.start)
    assert (denial.released, denial.reason, denial.member) == \
        (False, int(DenialReason.KOS_POLICY_MISMATCH), world.members[1].address)
    assert world.committee.release_state(request_id, world.members[1].address) == 2
    assert world.chain.retrievals.request(request_id).status == RequestStatus.APPROVED  # 1 <= m - t_k

    assert world.member(0).poll().outcomes == {request_id: Outcome.DENIED}
    req = world.chain.retrievals.request(request_id)
    assert (req.status, req.denial_reason) == (RequestStatus.DENIED, int(DenialReason.KOS_POLICY_MISMATCH))
    assert world.token_events(request_id) == []


def test_a_member_restarted_drops_the_request_it_already_released(world: World) -> None:
    dataset = world.dataset()
    request_id = _approved(world, dataset)
    assert world.member(0).poll().outcomes == {request_id: Outcome.ISSUED}
    block = world.dev.client.block_number()

    again = world.member(0, state="member-1-restarted")  # replays the approval from the start block
    assert again.poll().outcomes == {request_id: Outcome.DROPPED}
    assert len(again.pending) == 0
    assert world.committee.release_counts(request_id) == (1, 0)
    logs = world.committee.contract.get_logs("SharesReleased", block + 1, requestId=request_id)
    assert logs == []
    with pytest.raises(TransactionReverted):  # and the contract would refuse a second one anyway
        world.committee.submit_release(world.members[0], request_id,
                                          [b"x"] * len(dataset.holders))


def test_a_share_not_matching_its_commitment_is_denied_as_an_invalid_wrap_key(world: World) -> None:
    dataset = world.dataset(wrong_commitment=(2, 1))  # holder 3, member 2: the owner dealt it wrong
    request_id = _approved(world, dataset)

    assert world.member(1).poll().outcomes == {request_id: Outcome.DENIED}
    (denial,) = world.committee.releases(request_id, world.start)
    assert denial.reason == int(DenialReason.KOS_WRAP_KEY_INVALID)
    assert world.member(0).poll().outcomes == {request_id: Outcome.ISSUED}  # its shares check


def test_a_request_for_a_dataset_no_member_serves_is_dropped_once_and_logged_once(world: World,
                                                                                  caplog) -> None:
    caplog.set_level("WARNING", logger="kos.orchestrator")
    served = world.dataset()
    foreign, _ = world.register(sealed_to=HpkePrivateKey.generate(os.urandom))
    world.activate(foreign)
    served_request, foreign_requests = _approved(world, served), [_approved(world, foreign) for _ in range(2)]

    member = world.member(0)
    report = member.poll()
    assert report.outcomes == {served_request: Outcome.ISSUED,
                               **{r: Outcome.DROPPED for r in foreign_requests}}
    assert list(member.pending) == [served_request]  # dropped at once, never tried again
    assert member.poll().outcomes == {served_request: Outcome.DROPPED}
    assert len(member.pending) == 0
    lines = [r for r in caplog.records if "does not serve" in r.getMessage()]
    assert len(lines) == 1, lines  # one line per dataset, not per request or per poll
    assert lines[0].fields["dataset"] == "0x" + foreign.dataset_id.hex()
    assert "not a committee dataset" in lines[0].fields["why"]
    for request_id in foreign_requests:
        assert world.committee.release_counts(request_id) == (0, 0)
        assert world.chain.retrievals.request(request_id).status == RequestStatus.APPROVED


def test_a_member_of_a_later_epoch_only_leaves_the_older_epochs_datasets(world: World) -> None:
    old = world.dataset()  # dealt to epoch 1 (member-1..3)
    world.start_committee(members=2, threshold=2)  # epoch 2: member-4, member-5
    new = world.dataset()
    old_request, new_request = _approved(world, old), _approved(world, new)

    newcomer = world.member(3)
    assert newcomer.poll().outcomes == {old_request: Outcome.DROPPED, new_request: Outcome.ISSUED}
    assert world.committee.release_counts(old_request) == (0, 0)
    veteran = world.member(0)  # not in epoch 2: serves epoch 1's dataset only
    assert veteran.poll().outcomes == {old_request: Outcome.ISSUED, new_request: Outcome.DROPPED}


def test_a_member_that_rotated_its_key_leaves_the_epochs_of_its_old_key_alone(world: World, caplog) -> None:
    """Member 1 is in epochs 1 and 2 but with a new HPKE key in epoch 2, and runs with that key:
    it cannot open its epoch-1 shares, so it leaves epoch 1's datasets to the others instead of
    denying them as invalid (a denial would count against the request)."""
    caplog.set_level("WARNING", logger="kos.orchestrator")
    old = world.dataset()  # dealt to epoch 1
    rotated = HpkePrivateKey.generate(os.urandom)
    keys = [rotated, *world.member_keys[1:3]]
    world.committee.start_epoch(world.dev.accounts["admin"], [a.address for a in world.members[:3]],
                                [k.public_key_bytes() for k in keys], THRESHOLD)
    world.member_keys[0] = rotated
    new = world.dataset()  # dealt to epoch 2
    old_request, new_request = _approved(world, old), _approved(world, new)

    member = world.member(0)
    assert member.poll().outcomes == {old_request: Outcome.DROPPED, new_request: Outcome.ISSUED}
    assert world.committee.release_counts(old_request) == (0, 0)  # no denial recorded
    [line] = [r for r in caplog.records if "does not serve" in r.getMessage()]
    assert "registered HPKE key in committee epoch 1 is not the one it runs with" in line.fields["why"]
    world.serve(old_request, members=(1, 2))  # the others still serve the old dataset
    assert world.committee.release_counts(old_request) == (2, 0)


def test_a_holder_whose_key_cannot_be_sealed_to_gets_no_share_and_the_others_are_served(world: World,
                                                                                          caplog) -> None:
    """A fragment holder re-registers a key no one can seal to (the all-zero X25519 point): each
    member still releases, with a placeholder for that holder and real envelopes for the others,
    so one broken (or hostile) holder cannot stall every request of its datasets."""
    caplog.set_level("WARNING", logger="kos.member")
    dataset = world.dataset()
    broken = dataset.holders[2]
    world.chain.holders.update(broken, bytes(32), "http://127.0.0.1:9")
    request_id = _approved(world, dataset)
    world.serve(request_id)  # members 1 and 2 each release
    releases = [r for r in world.committee.releases(request_id, world.start) if r.released]
    assert len(releases) == 2
    addresses = [a.address for a in world.members]
    for release in releases:
        assert release.sealed_envelopes[2] == UNSEALABLE_ENVELOPE
        for j in (0, 1):  # the others' envelopes open and verify
            member = addresses.index(release.member)
            world.verified(request_id, dataset, member, j, release.sealed_envelopes[j])
    assert all(world.chain.retrievals.token_issued(request_id, h.address) for h in dataset.holders)
    unusable = [r for r in caplog.records if "HPKE key is unusable" in r.getMessage()]
    assert len(unusable) == 2 and all(r.fields["holder"] == broken.address for r in unusable)


def _member_settings(world: World, folder: Path, account: LocalAccount, key: HpkePrivateKey) -> KosSettings:
    folder.mkdir()
    (folder / "deployment.json").write_text(json.dumps(world.dev.deployment.to_json()))
    (folder / "passphrase").write_text(PASSPHRASE)
    save_plain_account_key(folder / "account.key", account)
    save_hpke_keystore(folder / "hpke.json", key, PASSPHRASE)
    return KosSettings(deployment=folder / "deployment.json", account_key=folder / "account.key",
                       hpke_keystore=folder / "hpke.json", passphrase_file=folder / "passphrase",
                       state_dir=folder / "state", confirmations=0)


def test_member_start_up_refuses_no_epoch_a_non_member_and_a_key_not_its_own(world: World,
                                                                             tmp_path: Path) -> None:
    account, key = world.dev.account("member-1"), HpkePrivateKey.generate(os.urandom)
    with pytest.raises(IdentityError, match="KOS committee member: the KosCommittee has no epoch yet"):
        build(_member_settings(world, tmp_path / "early", account, key))
    world.start_committee()  # epoch 1: member-1..3 with their own keys
    with pytest.raises(IdentityError, match=r"HPKE keystore's public key is not member .*'s key in "
                                            r"committee epoch 1"):
        build(_member_settings(world, tmp_path / "wrong-key", account, key))
    outsider = world.dev.account("outsider")
    with pytest.raises(IdentityError,
                       match=f"account {outsider.address} is not a member of committee epoch 1"):
        build(_member_settings(world, tmp_path / "outsider", outsider, world.member_keys[0]))

    service = build(_member_settings(world, tmp_path / "good", world.members[0], world.member_keys[0]))
    assert service.member is not None and service.member.index_in(1) == 0
    assert not world.chain.retrievals.has_kos_role(world.members[0].address)  # it needs none

    # epoch 2 retires member-1: it still starts (it serves the datasets dealt to epoch 1); the
    # outsider is still refused, now for every epoch
    world.committee.start_epoch(world.dev.accounts["admin"], [a.address for a in world.members[1:]],
                                [k.public_key_bytes() for k in world.member_keys[1:]], THRESHOLD)
    retired = build(_member_settings(world, tmp_path / "retired", world.members[0], world.member_keys[0]))
    assert retired.member is not None and retired.member.index_in(2) is None
    with pytest.raises(IdentityError, match=r"is not a member of any committee epoch \(1\.\.2\)"):
        build(_member_settings(world, tmp_path / "outsider-2", outsider, world.member_keys[0]))
