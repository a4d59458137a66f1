"""Off-chain evaluation of a Key Access Policy, mirroring ``RetrievalCoordinator``.

Pure: the caller supplies the block timestamp, the dataset status, and the results of
the checks that need the chain (attestation signature, replay). :func:`evaluate`
returns the first failing :class:`DenialReason` in the order of
``docs/ARCHITECTURE.md`` ("Order of checks"); :func:`check` raises instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from shardkey.policy.errors import PolicyDeniedError, PolicyValueError
from shardkey.policy.geo import in_circle, in_polygon
from shardkey.policy.model import Policy, normalize_address
from shardkey.policy.window import (
    in_daily_window,
    too_early,
    too_late,
    weekday_allowed,
)

_DESCRIPTIONS: dict[int, str] = {
    0: "allowed",
    1: "the requester is not allowed by the policy",
    2: "the policy is not valid yet (before not_before)",
    3: "the policy has expired (after not_after)",
    4: "outside the daily time window (UTC)",
    5: "not on an allowed weekday (UTC)",
    6: "the policy requires a location attestation and none was given",
    7: "the location attestor is not trusted by the policy",
    8: "the location attestation signature is invalid",
    9: "the location attestation was issued for another requester",
    10: "the location attestation is too old",
    11: "the location attestation is dated in the future",
    12: "the location attestation was already used",
    13: "the attested location is outside every allowed region",
    14: "the dataset is not active",
    15: "the dataset has been revoked",
    16: "the approval window has expired",
    17: "the KOS found the policy not satisfied",
    18: "the KOS could not unseal the dataset's wrap key",
    19: "the location attestation is less accurate than the policy allows",
}


class DenialReason(IntEnum):
    """Why a request was denied; codes shared with the contracts and the KOS (``uint8``)."""

    NONE = 0
    NOT_ALLOWED_REQUESTER = 1
    TOO_EARLY = 2
    TOO_LATE = 3
    OUTSIDE_DAILY_WINDOW = 4
    OUTSIDE_WEEKDAYS = 5
    MISSING_ATTESTATION = 6
    UNTRUSTED_ATTESTOR = 7
    BAD_ATTESTATION_SIGNATURE = 8
    ATTESTATION_FOR_OTHER_REQUESTER = 9
    STALE_ATTESTATION = 10
    ATTESTATION_FROM_FUTURE = 11
    ATTESTATION_REPLAYED = 12
    OUTSIDE_REGIONS = 13
    DATASET_NOT_ACTIVE = 14
    DATASET_REVOKED = 15
    APPROVAL_EXPIRED = 16
    KOS_POLICY_MISMATCH = 17
    KOS_WRAP_KEY_INVALID = 18
    ATTESTATION_TOO_COARSE = 19

    @property
    def description(self) -> str:
        """A sentence for CLI messages and the audit log."""
        return _DESCRIPTIONS[self.value]

    @property
    def label(self) -> str:
        """The contract's enum name (``OutsideRegions``), as shown to users and auditors."""
        return "".join(word.capitalize() for word in self.name.split("_"))


class DatasetStatus(IntEnum):
    """Dataset lifecycle status, as in ``DatasetRegistry``."""

    NONE = 0
    PENDING = 1
    ACTIVE = 2
    REVOKED = 3


def _check_int(path: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyValueError(path, f"must be an integer between {low} and {high}")


@dataclass(frozen=True)
class Attestation:
    """A location attestation as submitted, plus the chain layer's verdicts on it.

    ``attestor`` is the account the request claims signed it; ``signature_valid`` says
    whether that signature verified (EIP-712 + EIP-1271); ``replayed`` whether its
    digest was already used.
    """

    requester: str
    lat_e6: int
    lon_e6: int
    accuracy_m: int
    issued_at: int
    nonce: bytes
    attestor: str
    signature_valid: bool
    replayed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "requester", normalize_address(self.requester, "requester"))
        object.__setattr__(self, "attestor", normalize_address(self.attestor, "attestor"))
        _check_int("lat_e6", self.lat_e6, -(1 << 31), (1 << 31) - 1)
        _check_int("lon_e6", self.lon_e6, -(1 << 31), (1 << 31) - 1)
        _check_int("accuracy_m", self.accuracy_m, 0, (1 << 32) - 1)
        _check_int("issued_at", self.issued_at, 0, (1 << 64) - 1)
        if not isinstance(self.nonce, bytes) or len(self.nonce) != 32:
            raise PolicyValueError("nonce", "must be 32 bytes")


@dataclass(frozen=True)
class RequestContext:
    """Everything a policy decision depends on besides the policy itself.

    ``now`` is the latest block's timestamp; ``dataset_status`` the dataset's status.
    """

    requester: str
    now: int
    dataset_status: DatasetStatus
    attestation: Attestation | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "requester", normalize_address(self.requester, "requester"))
        _check_int("now", self.now, 0, (1 << 64) - 1)
        object.__setattr__(self, "dataset_status", DatasetStatus(self.dataset_status))


def _in_regions(policy: Policy, att: Attestation) -> bool:
    for c in policy.circles:
        if in_circle(att.lat_e6, att.lon_e6, att.accuracy_m, c.lat_e6, c.lon_e6, c.radius_m):
            return True
    return any(in_polygon(att.lat_e6, att.lon_e6, p.lats_e6, p.lons_e6) for p in policy.polygons)


def _geo_reason(policy: Policy, ctx: RequestContext) -> DenialReason:
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


def evaluate(policy: Policy, ctx: RequestContext) -> DenialReason:
    """Return :attr:`DenialReason.NONE` if ``policy`` allows the request, else the first failure.

    Order: dataset status (revoked 15, otherwise not active 14), requester (1),
    not_before (2), not_after (3), weekday (5), daily window (4), then, when the policy
    lists attestors: attestation present (6), attestor listed (7), signature (8),
    attestation requester (9), issued in the future (11), stale (10), replayed (12),
    accuracy above ``max_accuracy_m`` (19), outside every region (13).
    Approvals are not part of this decision (see :func:`approvals_status`).
    """
    if ctx.dataset_status == DatasetStatus.REVOKED:
        return DenialReason.DATASET_REVOKED
    if ctx.dataset_status != DatasetStatus.ACTIVE:
        return DenialReason.DATASET_NOT_ACTIVE
    if policy.requesters and ctx.requester not in policy.requesters:
        return DenialReason.NOT_ALLOWED_REQUESTER
    if too_early(policy.not_before, ctx.now):
        return DenialReason.TOO_EARLY
    if too_late(policy.not_after, ctx.now):
        return DenialReason.TOO_LATE
    if not weekday_allowed(policy.weekday_mask, ctx.now):
        return DenialReason.OUTSIDE_WEEKDAYS
    if not in_daily_window(policy.daily_start_minute, policy.daily_end_minute, ctx.now):
        return DenialReason.OUTSIDE_DAILY_WINDOW
    if policy.attestors:
        return _geo_reason(policy, ctx)
    return DenialReason.NONE


def check(policy: Policy, ctx: RequestContext) -> None:
    """Return if ``policy`` allows the request; raise :class:`PolicyDeniedError` otherwise."""
    reason = evaluate(policy, ctx)
    if reason != DenialReason.NONE:
        raise PolicyDeniedError(reason)


@dataclass(frozen=True)
class GroupStatus:
    """Approval progress of one group."""

    name: str
    approvals: int
    required: int
    approvers: tuple[str, ...]

    @property
    def satisfied(self) -> bool:
        """Whether the group has its count."""
        return self.approvals >= self.required


@dataclass(frozen=True)
class ApprovalStatus:
    """Approval progress of every group; ``satisfied`` when every group has its count."""

    groups: tuple[GroupStatus, ...]

    @property
    def satisfied(self) -> bool:
        """Whether every group has its count (true for a policy without groups)."""
        return all(g.satisfied for g in self.groups)


def approvals_status(policy: Policy, approvers: Iterable[str], requester: str) -> ApprovalStatus:
    """Count approvals per group as the contract does.

    Each distinct approver counts once in every group that lists it; the requester's own
    approval is ignored (the contract refuses it with ``SelfApproval``); approvers in no
    group are ignored.
    """
    me = normalize_address(requester, "requester")
    distinct = {normalize_address(a, "approver") for a in approvers} - {me}
    groups = []
    for group in policy.groups:
        counted = tuple(m for m in group.members if m in distinct)
        groups.append(GroupStatus(group.name, len(counted), group.required, counted))
    return ApprovalStatus(tuple(groups))
