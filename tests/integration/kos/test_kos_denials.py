"""A member's own KAP re-check: denials with the contract's reason codes. A request is denied
once more than ``m - t_k`` members denied it (here two of three)."""

from __future__ import annotations

import os

import pytest

from kos.orchestrator import Outcome
from shardkey.chain import eip712
from shardkey.chain.model import RequestStatus
from shardkey.policy import ApprovalGroup, Circle, DenialReason


def _denied_with(world, request_id: int, reason: DenialReason) -> None:
    """Members 1 and 2 each deny with ``reason``; the second denial denies the request."""
    for i in (0, 1):
        assert world.member(i).poll().outcomes == {request_id: Outcome.DENIED}
    req = world.chain.retrievals.request(request_id)
    assert req.status == RequestStatus.DENIED
    assert req.denial_reason == int(reason)
    assert [r.reason for r in world.committee.releases(request_id, world.start)] == [int(reason)] * 2
    assert world.token_events(request_id) == []


@pytest.mark.parametrize("change", ["exclude-requester", "add-approval-group"])
def test_newer_policy_the_request_fails_is_a_policy_mismatch(world, change: str) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    outsider = world.dev.account("someone-else")
    if change == "exclude-requester":
        newer = world.policy(requesters=(outsider.address,))
    else:
        extra = ApprovalGroup("legal", (outsider.address,), 1)
        newer = world.policy(groups=(*world.policy().groups, extra))
    world.chain.datasets.update_policy(world.owner, dataset.dataset_id, newer)
    world.approve(request_id)  # the contract counts it under the request's version 1

    _denied_with(world, request_id, DenialReason.KOS_POLICY_MISMATCH)


def test_newer_policy_that_still_allows_the_request_is_served(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.chain.datasets.update_policy(world.owner, dataset.dataset_id,
                                       world.policy(requesters=(world.requester.address,)))
    world.approve(request_id)
    world.serve(request_id)
    world.assert_served(request_id, dataset)


def test_expired_approval_is_denied(world) -> None:
    dataset = world.dataset(world.policy(approval_window=60))
    request_id = world.request(dataset)
    world.approve(request_id)
    world.advance(120)

    _denied_with(world, request_id, DenialReason.APPROVAL_EXPIRED)


def test_a_share_dealt_wrong_is_denied_by_its_member_and_the_others_serve(world) -> None:
    dataset = world.dataset(wrong_commitment=(1, 0))  # member 1's share for holder 2
    request_id = world.request(dataset)
    world.approve(request_id)

    assert world.member(0).poll().outcomes == {request_id: Outcome.DENIED}
    (denial,) = world.committee.releases(request_id, world.start)
    assert denial.reason == int(DenialReason.KOS_WRAP_KEY_INVALID)
    assert world.chain.retrievals.request(request_id).status == RequestStatus.APPROVED
    world.serve(request_id, members=(1, 2))
    world.assert_served(request_id, dataset)


def test_a_committee_dataset_never_dealt_is_dropped_once_and_logged_once(world, caplog) -> None:
    caplog.set_level("WARNING", logger="kos.orchestrator")
    dataset, target = world.register()
    target.wipe()  # the owner never posted registerDeal: the contract takes no release nor denial
    world.activate(dataset)
    ids = [world.request(dataset) for _ in range(2)]
    for request_id in ids:
        world.approve(request_id)

    member = world.member(0)
    assert member.poll().outcomes == {i: Outcome.DROPPED for i in ids}
    assert len(member.pending) == 0 and member.poll().outcomes == {}
    (line,) = [r for r in caplog.records if "does not serve" in r.getMessage()]
    assert "registered no deal" in line.fields["why"]
    assert all(world.chain.retrievals.request(i).status == RequestStatus.APPROVED for i in ids)


def test_revoked_dataset_is_denied(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    world.chain.datasets.revoke(world.owner, dataset.dataset_id)

    _denied_with(world, request_id, DenialReason.DATASET_REVOKED)


def test_attestation_is_judged_at_request_time_and_its_signature_rechecked(world) -> None:
    attestor = world.dev.account("attestor")
    policy = world.policy(attestors=(attestor.address,), max_attestation_age=300,
                          circles=(Circle(48_000_000, 2_000_000, 50_000),))
    dataset = world.dataset(policy)
    now = world.dev.client.latest_timestamp()
    attestation = (world.requester.address, 48_000_100, 2_000_100, 20, now, os.urandom(32))
    message = eip712.attestation_message(*attestation)
    signature = eip712.sign(world.chain.retrievals.domain, "LocationAttestation", message, attestor)
    receipt = world.chain.retrievals.request_retrieval(world.requester, dataset.dataset_id,
                                                       os.urandom(32), attestation,
                                                       attestor.address, signature)
    events = world.chain.retrievals.contract.process_receipt("RetrievalRequested", receipt)
    request_id = int(events[0].args["requestId"])
    world.advance(600)  # the approval comes after the attestation's maximum age
    world.approve(request_id)
    member = world.member(0)

    assert member.poll().outcomes == {request_id: Outcome.ISSUED}
    verdict = member.orchestrator.kap.attestation(world.chain.retrievals.request(request_id))
    assert verdict is not None and verdict.signature_valid
    world.serve(request_id, members=(1,))
    world.assert_served(request_id, dataset)
