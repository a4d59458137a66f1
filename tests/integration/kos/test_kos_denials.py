"""The KOS's own KAP re-check: denials with the contract's reason codes."""

from __future__ import annotations

import os

import pytest

from kos.orchestrator import Outcome
from shardkey.chain import eip712
from shardkey.chain.model import RequestStatus
from shardkey.policy import ApprovalGroup, Circle, DenialReason


def _denied_with(world, request_id: int, reason: DenialReason) -> None:
    req = world.chain.retrievals.request(request_id)
    assert req.status == RequestStatus.DENIED
    assert req.denial_reason == int(reason)
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

    report = world.replica().poll()

    assert report.outcomes == {request_id: Outcome.DENIED}
    _denied_with(world, request_id, DenialReason.KOS_POLICY_MISMATCH)


def test_newer_policy_that_still_allows_the_request_issues(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.chain.datasets.update_policy(world.owner, dataset.dataset_id,
                                       world.policy(requesters=(world.requester.address,)))
    world.approve(request_id)
    assert world.replica().poll().outcomes == {request_id: Outcome.ISSUED}
    world.assert_tokens_open(request_id, dataset)


def test_expired_approval_is_denied(world) -> None:
    dataset = world.dataset(world.policy(approval_window=60))
    request_id = world.request(dataset)
    world.approve(request_id)
    world.advance(120)

    assert world.replica().poll().outcomes == {request_id: Outcome.DENIED}
    _denied_with(world, request_id, DenialReason.APPROVAL_EXPIRED)


def test_wrap_key_sealed_with_the_wrong_info_is_denied(world) -> None:
    dataset = world.dataset(wrong_info_at=1)
    request_id = world.request(dataset)
    world.approve(request_id)

    assert world.replica().poll().outcomes == {request_id: Outcome.DENIED}
    _denied_with(world, request_id, DenialReason.KOS_WRAP_KEY_INVALID)


def test_revoked_dataset_is_denied(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    world.chain.datasets.revoke(world.owner, dataset.dataset_id)

    assert world.replica().poll().outcomes == {request_id: Outcome.DENIED}
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
    kos = world.replica()

    assert kos.poll().outcomes == {request_id: Outcome.ISSUED}
    verdict = kos.orchestrator.kap.attestation(world.chain.retrievals.request(request_id))
    assert verdict is not None and verdict.signature_valid
    world.assert_tokens_open(request_id, dataset)
