"""The holder's own check of a request's Key Access Policy before it releases fragments.

The chain already enforced the policy when the request was made, and the KOS checked it
again; the holder checks once more (fail closed) with its own reads:

- the policy version the request was made under (``datasets.policy(id, version)``);
- dataset status, requester and the time conditions (window, weekdays, daily hours)
  against the *latest block*: a request approved inside a window is not served after
  the window closed;
- the location attestation as recorded in the request's ``RetrievalRequested`` event,
  judged at the request's own block time (``requestedAt``): the attestation only has
  to be fresh when it is used, approvals may legitimately take longer than
  ``maxAttestationAge``. Its signature is recovered here (EIP-712); when it cannot be
  recovered to the attestor, the chain's EIP-1271 verdict is accepted only if the
  attestor is a contract. The digest was consumed by this very request, so it is not
  a replay;
- every approval group has its count (``hasApproved`` for each member, the requester's
  own approval never counting).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from eth_utils.address import to_checksum_address

from shardkey.chain import eip712
from shardkey.chain.bindings import ZERO_ADDRESS, ShardKeyChain
from shardkey.chain.model import DatasetInfo, RequestInfo, request_origin
from shardkey.policy import (
    Attestation,
    DatasetStatus,
    DenialReason,
    Policy,
    RequestContext,
    approvals_status,
    evaluate,
)

log = logging.getLogger(__name__)


def recheck_request(chain: ShardKeyChain, request: RequestInfo, dataset: DatasetInfo,
                    from_block: int) -> str | None:
    """None when the policy allows releasing fragments now, else why not."""
    policy = chain.datasets.policy(request.dataset_id, request.policy_version)
    now = chain.client.latest_timestamp()
    status = DatasetStatus(int(dataset.status))
    reason = evaluate(dataclasses.replace(policy, attestors=()),
                      RequestContext(request.requester, now, status))
    if reason != DenialReason.NONE:
        return f"policy v{request.policy_version}: {reason.name} ({reason.description})"
    if policy.attestors:
        attestation = load_attestation(chain, request, from_block)
        at_request = RequestContext(request.requester, request.requested_at, DatasetStatus.ACTIVE,
                                    attestation)
        reason = evaluate(policy, at_request)
        if reason != DenialReason.NONE:
            return f"policy v{request.policy_version}: {reason.name} ({reason.description})"
    return _approvals_problem(chain, request, policy)


def _approvals_problem(chain: ShardKeyChain, request: RequestInfo, policy: Policy) -> str | None:
    members = sorted({m for group in policy.groups for m in group.members})
    approvers = [m for m in members if chain.retrievals.has_approved(request.request_id, m)]
    status = approvals_status(policy, approvers, request.requester)
    if status.satisfied:
        return None
    short = [f"{g.name} {g.approvals}/{g.required}" for g in status.groups if not g.satisfied]
    return "approvals not satisfied: " + ", ".join(short)


def load_attestation(chain: ShardKeyChain, request: RequestInfo, from_block: int) -> Attestation | None:
    """The attestation of a request as its ``RetrievalRequested`` event recorded it.

    Only an event that describes the request as stored counts (same requester, dataset
    and ephemeral key): request ids are sequential, so a reorg can give one to another
    request, and a node may still answer with logs of the old branch.
    """
    contract = chain.retrievals.contract
    logs = [entry for entry in contract.get_logs("RetrievalRequested", from_block,
                                                  requestId=request.request_id)
            if request_origin(entry.args) == request.origin]
    if not logs:
        return None
    entry = logs[-1]
    args = entry.args
    attestor = to_checksum_address(args["attestor"])
    fields = _attestation_fields(args["attestation"])
    if attestor == ZERO_ADDRESS and fields["requester"] == ZERO_ADDRESS:
        return None
    valid = _signature_valid(chain, attestor, fields, bytes(args["attestationSig"]))
    return Attestation(requester=fields["requester"], lat_e6=fields["latE6"], lon_e6=fields["lonE6"],
                       accuracy_m=fields["accuracyM"], issued_at=fields["issuedAt"],
                       nonce=fields["nonce"], attestor=attestor, signature_valid=valid)


def _attestation_fields(raw: Any) -> dict[str, Any]:
    names = ("requester", "latE6", "lonE6", "accuracyM", "issuedAt", "nonce")
    values = [raw[n] for n in names] if isinstance(raw, Mapping) else list(raw)
    fields = dict(zip(names, values, strict=True))
    fields["requester"] = to_checksum_address(fields["requester"])
    fields["nonce"] = bytes(fields["nonce"])
    for key in ("latE6", "lonE6", "accuracyM", "issuedAt"):
        fields[key] = int(fields[key])
    return fields


def _signature_valid(chain: ShardKeyChain, attestor: str, fields: Mapping[str, Any],
                     signature: bytes) -> bool:
    if signature:
        message = eip712.attestation_message(fields["requester"], fields["latE6"], fields["lonE6"],
                                             fields["accuracyM"], fields["issuedAt"], fields["nonce"])
        try:
            if eip712.recover(chain.retrievals.domain, "LocationAttestation", message,
                              signature) == attestor:
                return True
        except Exception:  # noqa: S110 - an unrecoverable signature falls through to the code check
            pass
    # Not an EOA signature we can check: the chain verified it with EIP-1271 when the
    # request was made; accept that only for a contract attestor.
    is_contract = len(chain.client.code(to_checksum_address(attestor))) > 0
    if not is_contract:
        log.warning("attestation signature does not recover to attestor",
                    extra={"fields": {"attestor": attestor}})
    return is_contract
