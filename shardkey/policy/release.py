"""The release decision: may the KOS issue (or a holder serve) for a request now? (pure)

One function, :func:`release_decision`, called by the KOS before it issues tokens and by
a holder before it delivers fragments (the CLI's pre-flight, before any request exists,
runs the same checks through :func:`shardkey.policy.evaluate`). The chain layer
(:mod:`shardkey.chain.release`) supplies the inputs it reads:
policies, dataset status, the latest block's time, the attestation verdict
(:mod:`shardkey.chain.attestation`) and the approvers.

Semantics (``docs/ARCHITECTURE.md``, "Release decision"):

- status, requester and time window are judged at ``now`` (the latest block): a request
  approved inside a window is not served after it closed;
- the location attestation is judged at ``requested_at``: it only had to be fresh when the
  request was made (approvals may take longer than ``maxAttestationAge``);
- approvals: every group of the policy has its count, else 17 (``KosPolicyMismatch``);
- all of the above under the version the request was made under (its own reason), then,
  when the owner published a newer version, under that one too: a request that fails
  only the current version gets 17 (``KosPolicyMismatch``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shardkey.policy.checks import AT_RELEASE, AllOf, ApprovalsCheck, LocationCheck
from shardkey.policy.context import Attestation, DatasetStatus, DenialReason, RequestContext
from shardkey.policy.model import Policy

_LOCATION = AllOf(LocationCheck())
_APPROVALS = AllOf(ApprovalsCheck())


@dataclass(frozen=True)
class ReleaseRequest:
    """What a release is judged for: who asked, and the block time of the request."""

    requester: str
    requested_at: int


def _reason(policy: Policy, request: ReleaseRequest, status: DatasetStatus, now: int,
            attestation: Attestation | None, approvers: frozenset[str]) -> DenialReason:
    at_now = RequestContext(request.requester, now, status, None, approvers)
    reason = AT_RELEASE.reason(policy, at_now)
    if reason != DenialReason.NONE:
        return reason
    at_request = RequestContext(request.requester, request.requested_at, status, attestation)
    reason = _LOCATION.reason(policy, at_request)
    if reason != DenialReason.NONE:
        return reason
    return _APPROVALS.reason(policy, at_now)


def release_decision(request_policy: Policy, current_policy: Policy | None,
                     request: ReleaseRequest, *, dataset_status: DatasetStatus, now: int,
                     attestation: Attestation | None,
                     approvers: Iterable[str]) -> DenialReason:
    """``NONE`` when the request may be served now, else the reason to deny it.

    ``request_policy`` is the version the request was made under; ``current_policy`` the
    dataset's current version when it is newer (else None). ``attestation`` carries the
    chain layer's signature verdict (None when the request gave none); ``approvers`` are
    the accounts whose approval of the request the chain recorded.
    """
    status = DatasetStatus(dataset_status)
    approved = frozenset(approvers)
    reason = _reason(request_policy, request, status, now, attestation, approved)
    if reason != DenialReason.NONE or current_policy is None:
        return reason
    if _reason(current_policy, request, status, now, attestation, approved) != DenialReason.NONE:
        return DenialReason.KOS_POLICY_MISMATCH
    return DenialReason.NONE
