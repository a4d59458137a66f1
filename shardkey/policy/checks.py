"""Composable checks of a Key Access Policy (pure, no I/O), failing closed.

Every check is a :class:`Check`: ``reason(policy, ctx)`` returns the first
:class:`DenialReason` it finds, or :attr:`DenialReason.NONE`. Checks never raise to deny
(one style everywhere: a reason is returned); they raise only on a programming error,
which a caller must treat as "no release". :class:`AllOf` composes checks in order and
refuses to be built empty: an empty composition would allow everything.

The contract's order of checks (``RetrievalCoordinator._evaluate``) is
:data:`CONTRACT_ORDER`; ``docs/ARCHITECTURE.md`` ("Order of checks") documents it.
"""

from __future__ import annotations

from typing import Protocol

from shardkey.policy.approvals import approvals_status
from shardkey.policy.context import Attestation, DatasetStatus, DenialReason, RequestContext
from shardkey.policy.errors import PolicyValueError
from shardkey.policy.geo import in_circle, in_polygon
from shardkey.policy.model import Policy
from shardkey.policy.window import in_daily_window, too_early, too_late, weekday_allowed


class Check(Protocol):
    """One condition of a Key Access Policy."""

    def reason(self, policy: Policy, ctx: RequestContext) -> DenialReason:
        """``NONE`` when ``ctx`` meets the condition, else why not."""
        ...


class AllOf:
    """Every check in order; the first denial wins. Never built empty."""

    def __init__(self, *checks: Check) -> None:
        if not checks:
            raise PolicyValueError("AllOf", "needs at least one check (an empty one would allow all)")
        self.checks: tuple[Check, ...] = checks

    def reason(self, policy: Policy, ctx: RequestContext) -> DenialReason:
        """The first check's denial, or ``NONE`` when every check passes."""
        for check in self.checks:
            reason = DenialReason(check.reason(policy, ctx))
            if reason != DenialReason.NONE:
                return reason
        return DenialReason.NONE


class DatasetStatusCheck:
    """The dataset is Active: Revoked is 15, anything else not Active is 14."""

    def reason(self, policy: Policy, ctx: RequestContext) -> DenialReason:
        """See the class docstring."""
        if ctx.dataset_status == DatasetStatus.REVOKED:
            return DenialReason.DATASET_REVOKED
        if ctx.dataset_status != DatasetStatus.ACTIVE:
            return DenialReason.DATASET_NOT_ACTIVE
        return DenialReason.NONE


class AccessCheck:
    """The requester is listed (an empty list allows everyone): else 1."""

    def reason(self, policy: Policy, ctx: RequestContext) -> DenialReason:
        """See the class docstring."""
        if policy.requesters and ctx.requester not in policy.requesters:
            return DenialReason.NOT_ALLOWED_REQUESTER
        return DenialReason.NONE


class TimeWindowCheck:
    """``ctx.now`` within not_before (2), not_after (3), weekdays (5), daily window (4)."""

    def reason(self, policy: Policy, ctx: RequestContext) -> DenialReason:
        """See the class docstring (checked in that order, as the contract does)."""
        if too_early(policy.not_before, ctx.now):
            return DenialReason.TOO_EARLY
        if too_late(policy.not_after, ctx.now):
            return DenialReason.TOO_LATE
        if not weekday_allowed(policy.weekday_mask, ctx.now):
            return DenialReason.OUTSIDE_WEEKDAYS
        if not in_daily_window(policy.daily_start_minute, policy.daily_end_minute, ctx.now):
            return DenialReason.OUTSIDE_DAILY_WINDOW
        return DenialReason.NONE


def _in_regions(policy: Policy, att: Attestation) -> bool:
    for c in policy.circles:
        if in_circle(att.lat_e6, att.lon_e6, att.accuracy_m, c.lat_e6, c.lon_e6, c.radius_m):
            return True
    return any(in_polygon(att.lat_e6, att.lon_e6, p.lats_e6, p.lons_e6) for p in policy.polygons)


class LocationCheck:
    """The location attestation, when the policy lists attestors, judged at ``ctx.now``.

    Present (6), attestor listed (7), signature valid (8), for this requester (9), not
    issued after ``now`` (11), not older than ``max_attestation_age`` (10), not replayed
    (12), accuracy within ``max_accuracy_m`` (19), inside some region (13).
    """

    def reason(self, policy: Policy, ctx: RequestContext) -> DenialReason:
        """See the class docstring."""
        if not policy.attestors:
            return DenialReason.NONE
        att = ctx.attestation
        if att is None:
            return DenialReason.MISSING_ATTESTATION
        if att.attestor not in policy.attestors:
            return DenialReason.UNTRUSTED_ATTESTOR
        if not att.signature_valid:
            return DenialReason.BAD_ATTESTATION_SIGNATURE
        if att.requester != ctx.requester:
            return DenialReason.ATTESTATION_FOR_OTHER_REQUESTER
        if att.issued_at > ctx.now:
            return DenialReason.ATTESTATION_FROM_FUTURE
        if ctx.now - att.issued_at > policy.max_attestation_age:
            return DenialReason.STALE_ATTESTATION
        if att.replayed:
            return DenialReason.ATTESTATION_REPLAYED
        if policy.max_accuracy_m > 0 and att.accuracy_m > policy.max_accuracy_m:
            return DenialReason.ATTESTATION_TOO_COARSE
        if not _in_regions(policy, att):
            return DenialReason.OUTSIDE_REGIONS
        return DenialReason.NONE


class ApprovalsCheck:
    """Every approval group has its count among ``ctx.approvers``: else 17 (KosPolicyMismatch).

    The contract has no reason code of its own for unmet approvals (the request simply
    stays Pending); an off-chain checker that finds them unmet reports the KOS's
    "policy not satisfied". Counting is :func:`shardkey.policy.approvals.approvals_status`.
    """

    def reason(self, policy: Policy, ctx: RequestContext) -> DenialReason:
        """See the class docstring."""
        if not approvals_status(policy, ctx.approvers, ctx.requester).satisfied:
            return DenialReason.KOS_POLICY_MISMATCH
        return DenialReason.NONE


AT_RELEASE = AllOf(DatasetStatusCheck(), AccessCheck(), TimeWindowCheck())
"""The conditions judged at the moment of release (status, requester, time window)."""

CONTRACT_ORDER = AllOf(DatasetStatusCheck(), AccessCheck(), TimeWindowCheck(), LocationCheck())
"""``RetrievalCoordinator._evaluate``: what :func:`shardkey.policy.evaluate.evaluate` runs."""
