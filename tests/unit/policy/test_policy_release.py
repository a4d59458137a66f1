"""The composable checks, AllOf, and the one release decision (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from shardkey.chain.model import DatasetStatus as ChainDatasetStatus
from shardkey.policy import (
    AccessCheck,
    AllOf,
    ApprovalGroup,
    ApprovalsCheck,
    Attestation,
    Circle,
    DatasetStatus,
    DatasetStatusCheck,
    DenialReason,
    LocationCheck,
    Policy,
    PolicyValueError,
    ReleaseRequest,
    RequestContext,
    TimeWindowCheck,
    release_decision,
)
from shardkey.policy.checks import CONTRACT_ORDER

NOW = 1_767_571_200 + 12 * 3600  # Monday 2026-01-05 12:00Z
R, X = "0x" + "a1" * 20, "0x" + "a2" * 20
T = "0x" + "b1" * 20
P1, P2 = "0x" + "c1" * 20, "0x" + "c2" * 20
GEO = Policy(attestors=(T,), max_attestation_age=600, max_accuracy_m=100,
             circles=(Circle(10_000_000, 10_000_000, 10_000),))
ATT = Attestation(R, 10_000_000, 10_000_000, 50, NOW - 10, bytes(32), T, signature_valid=True)
REQ = ReleaseRequest(R, NOW)


def decide(policy: Policy, current: Policy | None = None, *, now: int = NOW,
           requested_at: int = NOW, attestation: Attestation | None = ATT,
           approvers: tuple[str, ...] = (), status: DatasetStatus = DatasetStatus.ACTIVE) -> DenialReason:
    return release_decision(policy, current, ReleaseRequest(R, requested_at), dataset_status=status,
                            now=now, attestation=attestation, approvers=approvers)


def test_one_dataset_status_enum() -> None:
    assert ChainDatasetStatus is DatasetStatus


def test_empty_all_of_is_refused() -> None:
    with pytest.raises(PolicyValueError, match="at least one check"):
        AllOf()


def test_all_of_returns_first_denial_in_order() -> None:
    ctx = RequestContext(X, NOW, DatasetStatus.ACTIVE)
    policy = Policy(requesters=(R,), not_before=NOW + 1)
    assert AllOf(AccessCheck(), TimeWindowCheck()).reason(policy, ctx) is DenialReason.NOT_ALLOWED_REQUESTER
    assert AllOf(TimeWindowCheck(), AccessCheck()).reason(policy, ctx) is DenialReason.TOO_EARLY
    assert AllOf(DatasetStatusCheck()).reason(policy, ctx) is DenialReason.NONE


def test_each_check_alone() -> None:
    ctx = RequestContext(R, NOW, DatasetStatus.REVOKED)
    assert DatasetStatusCheck().reason(Policy(), ctx) is DenialReason.DATASET_REVOKED
    assert LocationCheck().reason(GEO, ctx) is DenialReason.MISSING_ATTESTATION
    assert LocationCheck().reason(Policy(), ctx) is DenialReason.NONE
    grouped = Policy(groups=(ApprovalGroup("g", (P1, P2), 2),))
    assert ApprovalsCheck().reason(grouped, dataclasses.replace(ctx, approvers=frozenset({P1}))) is (
        DenialReason.KOS_POLICY_MISMATCH)
    assert ApprovalsCheck().reason(grouped, RequestContext(R, NOW, 2, None, frozenset({P1, P2}))) is (
        DenialReason.NONE)


def test_contract_order_is_status_access_time_location() -> None:
    names = [type(c).__name__ for c in CONTRACT_ORDER.checks]
    assert names == ["DatasetStatusCheck", "AccessCheck", "TimeWindowCheck", "LocationCheck"]


def test_release_allows_and_judges_attestation_at_request_time() -> None:
    assert decide(GEO) is DenialReason.NONE
    # approvals took an hour: the attestation is judged at requested_at, not at now
    assert decide(GEO, now=NOW + 3600) is DenialReason.NONE
    stale = dataclasses.replace(ATT, issued_at=NOW - 700)
    assert decide(GEO, attestation=stale) is DenialReason.STALE_ATTESTATION


def test_release_judges_time_window_at_now() -> None:
    windowed = dataclasses.replace(GEO, not_after=NOW + 60)
    assert decide(windowed) is DenialReason.NONE
    assert decide(windowed, now=NOW + 61) is DenialReason.TOO_LATE


def test_release_status_first() -> None:
    assert decide(GEO, status=DatasetStatus.REVOKED, attestation=None) is DenialReason.DATASET_REVOKED
    assert decide(GEO, status=DatasetStatus.PENDING) is DenialReason.DATASET_NOT_ACTIVE


def test_release_unmet_approvals_is_policy_mismatch() -> None:
    grouped = Policy(groups=(ApprovalGroup("g", (P1, P2, R), 2),))
    assert decide(grouped, approvers=(P1,)) is DenialReason.KOS_POLICY_MISMATCH
    assert decide(grouped, approvers=(P1, R)) is DenialReason.KOS_POLICY_MISMATCH  # own approval
    assert decide(grouped, approvers=(P1, P2)) is DenialReason.NONE


def test_release_under_current_version() -> None:
    v1 = Policy(requesters=(R, X))
    v2 = Policy(requesters=(X,))
    assert decide(v1) is DenialReason.NONE
    assert decide(v1, v2) is DenialReason.KOS_POLICY_MISMATCH  # passes v1, fails current
    assert decide(v2, v1) is DenialReason.NOT_ALLOWED_REQUESTER  # its own version's reason first
    assert decide(v1, v1) is DenialReason.NONE
    grouped = Policy(groups=(ApprovalGroup("g", (P1, P2), 2),))
    assert decide(v1, grouped, approvers=(P1,)) is DenialReason.KOS_POLICY_MISMATCH
    assert decide(v1, grouped, approvers=(P1, P2)) is DenialReason.NONE
