"""Off-chain evaluation of a Key Access Policy, mirroring ``RetrievalCoordinator``.

Pure: the caller supplies the block timestamp, the dataset status, and the results of
the checks that need the chain (attestation signature, replay). :func:`evaluate`
returns the first failing :class:`DenialReason` in the order of
``docs/ARCHITECTURE.md`` ("Order of checks"), composing the checks of
:mod:`shardkey.policy.checks`; :func:`check` raises instead. The release decision of the
KOS and the holders is :func:`shardkey.policy.release.release_decision`.
"""

from __future__ import annotations

from shardkey.policy.approvals import ApprovalStatus, GroupStatus, approvals_status
from shardkey.policy.checks import CONTRACT_ORDER
from shardkey.policy.context import Attestation, DatasetStatus, DenialReason, RequestContext
from shardkey.policy.errors import PolicyDeniedError
from shardkey.policy.model import Policy

__all__ = ["ApprovalStatus", "Attestation", "DatasetStatus", "DenialReason", "GroupStatus",
           "RequestContext", "approvals_status", "check", "evaluate"]


def evaluate(policy: Policy, ctx: RequestContext) -> DenialReason:
    """Return :attr:`DenialReason.NONE` if ``policy`` allows the request, else the first failure.

    Order: dataset status (revoked 15, otherwise not active 14), requester (1),
    not_before (2), not_after (3), weekday (5), daily window (4), then, when the policy
    lists attestors: attestation present (6), attestor listed (7), signature (8),
    attestation requester (9), issued in the future (11), stale (10), replayed (12),
    accuracy above ``max_accuracy_m`` (19), outside every region (13).
    Approvals are not part of this decision (see :func:`approvals_status`).
    """
    return CONTRACT_ORDER.reason(policy, ctx)


def check(policy: Policy, ctx: RequestContext) -> None:
    """Return if ``policy`` allows the request; raise :class:`PolicyDeniedError` otherwise."""
    reason = evaluate(policy, ctx)
    if reason != DenialReason.NONE:
        raise PolicyDeniedError(reason)
