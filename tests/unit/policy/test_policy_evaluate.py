"""Evaluation: every denial reason, the order of checks, approvals, check()."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardkey.errors import PolicyDenied
from shardkey.policy import (
    ApprovalGroup,
    Attestation,
    Circle,
    DatasetStatus,
    DenialReason,
    Policy,
    PolicyDeniedError,
    PolicyValueError,
    Polygon,
    RequestContext,
    approvals_status,
    check,
    evaluate,
)

NOW = 1_767_571_200 + 12 * 3600  # Monday 2026-01-05 12:00Z (minute 720, weekday 0)
R, X, Y = "0x" + "a1" * 20, "0x" + "a2" * 20, "0x" + "a3" * 20  # requesters
T, U = "0x" + "b1" * 20, "0x" + "b2" * 20  # attestors
P1, P2, P3 = "0x" + "c1" * 20, "0x" + "c2" * 20, "0x" + "c3" * 20  # approvers
NONCE = bytes(32)

POLICY = Policy(
    requesters=(R, X),
    not_before=NOW - 100,
    not_after=NOW + 100,
    daily_start_minute=600,
    daily_end_minute=800,
    weekday_mask=0b0000001,
    attestors=(T,),
    max_attestation_age=600,
    max_accuracy_m=100,
    circles=(Circle(10_000_000, 10_000_000, 10_000),),
)
ATT = Attestation(R, 10_000_000, 10_000_000, 50, NOW - 10, NONCE, T, signature_valid=True)
CTX = RequestContext(R, NOW, DatasetStatus.ACTIVE, ATT)

# Each failure as (policy changes, context changes, attestation changes).
Change = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
FAILURES: dict[DenialReason, Change] = {
    DenialReason.DATASET_REVOKED: ({}, {"dataset_status": DatasetStatus.REVOKED}, {}),
    DenialReason.DATASET_NOT_ACTIVE: ({}, {"dataset_status": DatasetStatus.PENDING}, {}),
    DenialReason.NOT_ALLOWED_REQUESTER: ({"requesters": (X,)}, {}, {}),
    DenialReason.TOO_EARLY: ({"not_before": NOW + 1}, {}, {}),
    DenialReason.TOO_LATE: ({"not_after": NOW - 1}, {}, {}),
    DenialReason.OUTSIDE_WEEKDAYS: ({"weekday_mask": 0b1111110}, {}, {}),
    DenialReason.OUTSIDE_DAILY_WINDOW: ({"daily_start_minute": 721}, {}, {}),
    DenialReason.MISSING_ATTESTATION: ({}, {"attestation": None}, {}),
    DenialReason.UNTRUSTED_ATTESTOR: ({}, {}, {"attestor": U}),
    DenialReason.BAD_ATTESTATION_SIGNATURE: ({}, {}, {"signature_valid": False}),
    DenialReason.ATTESTATION_FOR_OTHER_REQUESTER: ({}, {}, {"requester": Y}),
    DenialReason.ATTESTATION_FROM_FUTURE: ({}, {}, {"issued_at": NOW + 1}),
    DenialReason.STALE_ATTESTATION: ({}, {}, {"issued_at": NOW - 601}),
    DenialReason.ATTESTATION_REPLAYED: ({}, {}, {"replayed": True}),
    DenialReason.ATTESTATION_TOO_COARSE: ({}, {}, {"accuracy_m": 101}),
    DenialReason.OUTSIDE_REGIONS: ({}, {}, {"lat_e6": 10_100_000}),
}
ORDER = list(FAILURES)  # documented order of checks


def build(failing: list[DenialReason]) -> tuple[Policy, RequestContext]:
    policy_changes: dict[str, Any] = {}
    ctx_changes: dict[str, Any] = {}
    att_changes: dict[str, Any] = {}
    for reason in failing:
        p, c, a = FAILURES[reason]
        policy_changes |= p
        ctx_changes |= c
        att_changes |= a
    if DenialReason.DATASET_REVOKED in failing:
        ctx_changes["dataset_status"] = DatasetStatus.REVOKED
    if "attestation" not in ctx_changes:
        ctx_changes["attestation"] = dataclasses.replace(ATT, **att_changes)
    return dataclasses.replace(POLICY, **policy_changes), dataclasses.replace(CTX, **ctx_changes)


def test_baseline_is_allowed() -> None:
    assert evaluate(POLICY, CTX) is DenialReason.NONE
    check(POLICY, CTX)


@pytest.mark.parametrize("reason", ORDER, ids=lambda r: r.name)
def test_each_denial_reason(reason: DenialReason) -> None:
    assert evaluate(*build([reason])) is reason


def test_order_of_checks_fixing_one_at_a_time() -> None:
    failing = list(ORDER)
    failing.remove(DenialReason.STALE_ATTESTATION)  # same field as FROM_FUTURE
    while failing:
        assert evaluate(*build(failing)) is failing[0]
        failing.pop(0)
    assert evaluate(*build([])) is DenialReason.NONE


@given(st.sets(st.sampled_from(ORDER)))
def test_order_of_checks_any_combination(failing: set[DenialReason]) -> None:
    if {DenialReason.STALE_ATTESTATION, DenialReason.ATTESTATION_FROM_FUTURE} <= failing:
        failing.discard(DenialReason.STALE_ATTESTATION)
    ordered = [r for r in ORDER if r in failing]
    expected = ordered[0] if ordered else DenialReason.NONE
    assert evaluate(*build(ordered)) is expected


def test_boundaries_are_inclusive() -> None:
    policy = dataclasses.replace(POLICY, not_before=NOW, not_after=NOW)
    assert evaluate(policy, CTX) is DenialReason.NONE
    for issued_at in (NOW, NOW - 600):  # issued now, and exactly max_age old
        ctx = dataclasses.replace(CTX, attestation=dataclasses.replace(ATT, issued_at=issued_at))
        assert evaluate(POLICY, ctx) is DenialReason.NONE
    ctx = dataclasses.replace(CTX, attestation=dataclasses.replace(ATT, accuracy_m=100))
    assert evaluate(POLICY, ctx) is DenialReason.NONE


def test_empty_conditions_allow_everything() -> None:
    ctx = RequestContext(Y, 5, DatasetStatus.ACTIVE)
    assert evaluate(Policy(), ctx) is DenialReason.NONE
    # Without attestors an attestation, however bad, is ignored.
    bad = dataclasses.replace(ATT, signature_valid=False, replayed=True, lat_e6=-80_000_000)
    assert evaluate(Policy(), dataclasses.replace(ctx, attestation=bad)) is DenialReason.NONE


def test_max_accuracy_zero_accepts_any_accuracy_that_fits() -> None:
    policy = dataclasses.replace(POLICY, max_accuracy_m=0)
    for accuracy, expected in ((10_000, DenialReason.NONE), (10_001, DenialReason.OUTSIDE_REGIONS)):
        ctx = dataclasses.replace(CTX, attestation=dataclasses.replace(ATT, accuracy_m=accuracy))
        assert evaluate(policy, ctx) is expected


def test_any_region_suffices_and_polygons_ignore_accuracy() -> None:
    square = Polygon(
        (20_000_000, 20_000_000, 21_000_000, 21_000_000), (20_000_000, 21_000_000, 21_000_000, 20_000_000)
    )
    policy = dataclasses.replace(POLICY, polygons=(square,))
    for lat, lon, expected in (
        (10_000_000, 10_000_000, DenialReason.NONE),  # in the circle
        (20_500_000, 20_500_000, DenialReason.NONE),  # in the polygon
        (20_000_000, 20_000_000, DenialReason.NONE),  # south-west corner: on the boundary, in
        (21_000_000, 20_500_000, DenialReason.OUTSIDE_REGIONS),  # north edge: out
        (15_000_000, 15_000_000, DenialReason.OUTSIDE_REGIONS),
    ):
        att = dataclasses.replace(ATT, lat_e6=lat, lon_e6=lon, accuracy_m=100)
        assert evaluate(policy, dataclasses.replace(CTX, attestation=att)) is expected


def test_addresses_compare_case_insensitively() -> None:
    ctx = RequestContext(
        R.upper().replace("0X", "0x"), NOW, DatasetStatus.ACTIVE, dataclasses.replace(ATT, attestor=T.lower())
    )
    assert evaluate(POLICY, ctx) is DenialReason.NONE


def test_check_raises_policy_denied() -> None:
    policy, ctx = build([DenialReason.TOO_LATE])
    with pytest.raises(PolicyDeniedError) as info:
        check(policy, ctx)
    assert info.value.reason is DenialReason.TOO_LATE
    assert isinstance(info.value, PolicyDenied) and info.value.exit_code == 3
    assert "expired" in str(info.value) and "TOO_LATE" in str(info.value)


def test_denial_reasons_match_architecture_doc() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "ARCHITECTURE.md").read_text()
    block = doc.split("### Denial reasons")[1].split("```")[1]
    pairs = re.findall(r"(\d+) (\w+)", block)
    assert len(pairs) == len(DenialReason) == 20
    for code, camel in pairs:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", camel).upper()
        assert DenialReason(int(code)).name == snake
        assert DenialReason(int(code)).description


def test_dataset_status_codes() -> None:
    assert [s.value for s in DatasetStatus] == [0, 1, 2, 3]
    assert evaluate(POLICY, dataclasses.replace(CTX, dataset_status=DatasetStatus.NONE)) is (
        DenialReason.DATASET_NOT_ACTIVE
    )


def test_context_inputs_are_checked() -> None:
    with pytest.raises(PolicyValueError, match=r"^nonce: "):
        dataclasses.replace(ATT, nonce=b"short")
    with pytest.raises(PolicyValueError, match=r"^lat_e6: "):
        dataclasses.replace(ATT, lat_e6=1 << 31)
    with pytest.raises(PolicyValueError, match=r"^accuracy_m: "):
        dataclasses.replace(ATT, accuracy_m=-1)
    with pytest.raises(PolicyValueError, match=r"^now: "):
        dataclasses.replace(CTX, now=-1)
    with pytest.raises(PolicyValueError, match=r"^requester: "):
        dataclasses.replace(CTX, requester="alice")


# --- approvals ------------------------------------------------------------------

GROUPED = Policy(
    groups=(
        ApprovalGroup("client", (P1, P2), 2),
        ApprovalGroup("provider", (P2, P3), 1),
    )
)


def test_approvals_counted_in_every_group_listing_the_approver() -> None:
    status = approvals_status(GROUPED, [P2], R)
    assert [(g.name, g.approvals, g.satisfied) for g in status.groups] == [
        ("client", 1, False),
        ("provider", 1, True),
    ]
    assert not status.satisfied
    status = approvals_status(GROUPED, [P2.lower(), P1, P2, Y], R)  # duplicates once, Y ignored
    assert [g.approvals for g in status.groups] == [2, 1] and status.satisfied
    assert status.groups[0].approvers == (normalize(P1), normalize(P2))


def test_self_approval_ignored() -> None:
    status = approvals_status(GROUPED, [P1, P2], P1)
    assert [g.approvals for g in status.groups] == [1, 1] and not status.satisfied


def test_no_groups_is_satisfied() -> None:
    assert approvals_status(Policy(), [], R).satisfied


def normalize(a: str) -> str:
    from shardkey.policy import normalize_address

    return normalize_address(a)
