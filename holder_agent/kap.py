"""The holder's own check of a request's Key Access Policy before it releases fragments.

The chain already enforced the policy when the request was made, and each committee member
checked it again before releasing its shares; the holder checks once more (fail closed) with
its own reads, through the very code the members run (:func:`shardkey.chain.release.release_reason`):

- dataset status, requester and the time conditions against the *latest block*;
- the location attestation of the request's ``RetrievalRequested`` event, judged at
  ``requestedAt``, its signature decided by :mod:`shardkey.chain.attestation` (EOA
  recovery, or an EIP-1271 call for a contract attestor);
- every approval group has its count;
- all of it under the version the request was made under and, when the owner published a
  newer one since, under the current version too: a request released under v1 is not served
  once v2 excludes the requester (``KosPolicyMismatch``).
"""

from __future__ import annotations

from shardkey.chain.attestation import AttestationReader
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.model import DatasetInfo, RequestInfo
from shardkey.chain.release import ReleaseCheck, release_check
from shardkey.policy import DenialReason


def recheck_reason(chain: ShardKeyChain, request: RequestInfo, dataset: DatasetInfo, now: int,
                   from_block: int) -> DenialReason:
    """``NONE`` when the policy allows releasing fragments at chain time ``now``, else why not."""
    return release_check(chain, request, dataset, now, AttestationReader(chain, from_block)).reason


def recheck(chain: ShardKeyChain, request: RequestInfo, dataset: DatasetInfo,
            attestations: AttestationReader) -> ReleaseCheck:
    """The release check at the latest block, with the policy versions it read."""
    return release_check(chain, request, dataset, chain.client.latest_timestamp(), attestations)


def problem_of(check: ReleaseCheck, request: RequestInfo) -> str | None:
    """None when ``check`` allows the release, else the reason as logged."""
    if check.reason == DenialReason.NONE:
        return None
    return f"policy v{request.policy_version}: {check.reason.name} ({check.reason.description})"


def recheck_request(chain: ShardKeyChain, request: RequestInfo, dataset: DatasetInfo,
                    from_block: int) -> str | None:
    """None when the policy allows releasing fragments now (latest block), else why not."""
    return problem_of(recheck(chain, request, dataset, AttestationReader(chain, from_block)), request)
