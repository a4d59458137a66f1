"""Gather what the release decision needs from the chain, then take it (the pure one).

The KOS (before ``issueTokens``) and every holder (before ``deliverFragments``) call
:func:`release_reason`; both therefore judge a request with the same reads and the same
:func:`shardkey.policy.release.release_decision`. The CLI's pre-flight before
``shardkey request`` calls :func:`preflight_reason` (same checks, same attestation rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shardkey.chain.attestation import AttestationFields, AttestationReader, digest_used, verdict
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.model import DatasetInfo, RequestInfo
from shardkey.policy.context import Attestation, DenialReason, RequestContext
from shardkey.policy.evaluate import evaluate
from shardkey.policy.model import Policy
from shardkey.policy.release import ReleaseRequest, release_decision

PolicyReader = Callable[[bytes, int], Policy]


def read_approvers(chain: ShardKeyChain, req: RequestInfo, policies: Iterable[Policy]) -> frozenset[str]:
    """Members of the policies' groups that approved ``req`` (``hasApproved``).

    Asks only until each group has its count (one answer per member shared by every
    group and version), and never for the requester, whose approval does not count.
    """
    approved: dict[str, bool] = {}
    for policy in policies:
        for group in policy.groups:
            count = sum(1 for m in group.members if approved.get(m))
            for member in group.members:
                if count >= group.required:
                    break
                if member in approved or member == req.requester:
                    continue
                approved[member] = chain.retrievals.has_approved(req.request_id, member)
                count += approved[member]
    return frozenset(m for m, ok in approved.items() if ok)


@dataclass(frozen=True)
class ReleaseCheck:
    """The release decision and the policy versions it was taken under (callers that
    need the policy again, like the holder's rate limit, use these rather than re-read)."""

    reason: DenialReason
    own: Policy  # the version the request was made under
    current: Policy | None  # the dataset's current version when newer, else None


def release_check(chain: ShardKeyChain, req: RequestInfo, dataset: DatasetInfo, now: int,
                  attestations: AttestationReader, policy: PolicyReader | None = None) -> ReleaseCheck:
    """The release decision on ``req`` at chain time ``now`` with the policies it read.

    ``policy`` reads one policy version (the KOS passes its per-poll cache); the current
    version is judged too when it is newer than the request's.
    """
    read = policy if policy is not None else chain.datasets.policy
    own = read(req.dataset_id, req.policy_version)
    current = (read(req.dataset_id, dataset.policy_version)
               if dataset.policy_version > req.policy_version else None)
    versions = [own] if current is None else [own, current]
    attestation = attestations.verdict(req) if any(p.attestors for p in versions) else None
    reason = release_decision(own, current, ReleaseRequest(req.requester, req.requested_at),
                              dataset_status=dataset.status, now=now, attestation=attestation,
                              approvers=read_approvers(chain, req, versions))
    return ReleaseCheck(reason, own, current)


def release_reason(chain: ShardKeyChain, req: RequestInfo, dataset: DatasetInfo, now: int,
                   attestations: AttestationReader,
                   policy: PolicyReader | None = None) -> DenialReason:
    """``NONE`` when ``req`` may be served at chain time ``now``, else why not
    (:func:`release_check`'s reason)."""
    return release_check(chain, req, dataset, now, attestations, policy).reason


def preflight_reason(chain: ShardKeyChain, requester: str, dataset_id: bytes,
                     attestation: tuple[str, AttestationFields, bytes] | None) -> tuple[DenialReason, int]:
    """The reason ``requestRetrieval`` would record now, and the block time it is judged at.

    The CLI asks this before sending a request: the same checks in the contract's order
    (:func:`shardkey.policy.evaluate`) on the current policy, the signature decided as for
    a release, the digest a replay when the coordinator marked it used.
    """
    dataset = chain.datasets.dataset(dataset_id)
    policy = chain.datasets.policy(dataset_id, dataset.policy_version)
    now = chain.client.latest_timestamp()
    judged: Attestation | None = None
    if attestation is not None:
        attestor, fields, signature = attestation
        judged = verdict(chain, attestor, fields, signature, replayed=digest_used(chain, fields))
    return evaluate(policy, RequestContext(requester, now, dataset.status, judged)), now
