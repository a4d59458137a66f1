"""``shardkey approve``: show what an approval approves, then approve exactly that.

An approval names the request id *and* the request's dataset, requester and ephemeral key
hash (an ``ApprovalSubject``); the contract refuses it for any other request, so a request
that takes over the id (request ids are sequential; a reorg hands them out again) is not
approved by it. The approver sees these fields, the attested location and the policy's
time window before anything is signed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from eth_utils.address import is_address, to_checksum_address

from shardkey.chain.attestation import RequestEventNotFound, ephemeral_key, find_requested
from shardkey.chain.bindings import ZERO_ADDRESS, ShardKeyChain
from shardkey.chain.eip712 import ApprovalSubject
from shardkey.chain.model import RequestInfo, RequestStatus
from shardkey.crypto.errors import HpkeKeyError
from shardkey.crypto.hpke import suite_for_public_key
from shardkey.errors import UsageError
from shardkey.policy.model import Policy
from shardkey.policy.window import weekday_names_from_mask


@dataclass(frozen=True)
class Attested:
    """The location attestation a request carried (as given in its event)."""

    attestor: str
    lat_e6: int
    lon_e6: int
    accuracy_m: int
    issued_at: int


@dataclass(frozen=True)
class ApprovalPreview:
    """Everything an approver is shown, and the subject that will be approved."""

    subject: ApprovalSubject
    request: RequestInfo
    policy: Policy
    attested: Attested | None
    event_found: bool
    ephemeral_key: bytes | None  # from the event, checked against the stored hash


def preview_approval(chain: ShardKeyChain, request_id: int, start_block: int) -> ApprovalPreview:
    """Read the request, its policy version and its ``RetrievalRequested`` event.

    Raises :class:`UsageError` when the request is not Pending (nothing to approve).
    """
    info = chain.retrievals.request(request_id)
    if info.status != RequestStatus.PENDING:
        raise UsageError(f"request {request_id} is {info.status.name.lower()}: only a pending request "
                         "can be approved")
    policy = chain.datasets.policy(info.dataset_id, info.policy_version)
    attested: Attested | None = None
    key: bytes | None = None
    try:  # matched on the stored fields: an orphaned request that once had this id is skipped
        record = find_requested(chain, info, start_block)
    except RequestEventNotFound:
        record = None
    if record is not None:
        key = ephemeral_key(record, info)
        f = record.fields
        if record.attestor != ZERO_ADDRESS:
            attested = Attested(record.attestor, f.lat_e6, f.lon_e6, f.accuracy_m, f.issued_at)
    subject = ApprovalSubject(request_id, info.dataset_id, info.requester, info.ephemeral_key_hash)
    return ApprovalPreview(subject, info, policy, attested, record is not None, key)


def check_expected(preview: ApprovalPreview, dataset: bytes | None, requester: str | None) -> None:
    """Refuse (UsageError) when ``--dataset`` / ``--requester`` differ from the request's."""
    if dataset is not None and dataset != preview.subject.dataset_id:
        raise UsageError(f"request {preview.subject.request_id} is for dataset "
                         f"0x{preview.subject.dataset_id.hex()}, not --dataset 0x{dataset.hex()}")
    if requester is not None:
        if not is_address(requester):
            raise UsageError(f"--requester {requester!r} is not an address or account name")
        if to_checksum_address(requester) != preview.subject.requester:
            raise UsageError(f"request {preview.subject.request_id} was made by "
                             f"{preview.subject.requester}, not --requester {requester}")


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _named(address: str, names: Mapping[str, str]) -> str:
    name = names.get(address)
    return f"{name} ({address})" if name else address


def _suite(key: bytes | None) -> str:
    if key is None:
        return "unknown suite (request event not found)"
    try:
        return suite_for_public_key(key).name
    except HpkeKeyError:
        return f"unknown suite ({len(key)} bytes)"


def _window(policy: Policy) -> str:
    parts = []
    if policy.not_before:
        parts.append(f"not before {_when(policy.not_before)}")
    if policy.not_after:
        parts.append(f"not after {_when(policy.not_after)}")
    if policy.daily_start_minute != policy.daily_end_minute:
        start, end = policy.daily_start_minute, policy.daily_end_minute
        parts.append(f"daily {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} UTC")
    if policy.weekday_mask:
        parts.append(",".join(weekday_names_from_mask(policy.weekday_mask)))
    return "; ".join(parts) if parts else "no time condition"


def describe(preview: ApprovalPreview, names: Mapping[str, str]) -> list[str]:
    """The lines shown before approving (no secret: everything here is on chain)."""
    s, info = preview.subject, preview.request
    lines = [f"approving request {s.request_id} (policy version {info.policy_version}):",
             f"  dataset     0x{s.dataset_id.hex()}",
             f"  requester   {_named(s.requester, names)}",
             f"  requested   {_when(info.requested_at)} (block time)",
             f"  key         {_suite(preview.ephemeral_key)}, keccak256 0x{s.ephemeral_key_hash.hex()}"]
    a = preview.attested
    if a is not None:
        lines.append(f"  location    {a.lat_e6 / 1e6:.6f}, {a.lon_e6 / 1e6:.6f} +/- {a.accuracy_m} m, "
                     f"attested by {_named(a.attestor, names)} at {_when(a.issued_at)}")
    elif preview.event_found:
        lines.append("  location    none attested")
    else:
        lines.append("  location    unknown (request event not found from the deployment's start block)")
    lines.append(f"  window      {_window(preview.policy)}; open {preview.policy.approval_window} s "
                 "once approved")
    return lines
