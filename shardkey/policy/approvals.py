"""Approval progress of a request, counted per group as the contract does (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shardkey.policy.model import Policy, normalize_address


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
