"""The access history, rebuilt from on-chain events alone (``shardkey audit log``).

Misbehaviour is shown in two kinds that must not be confused: *proofs*
(``ShardIntegrityFailureProven``: the holder's own signed ``ShardServed`` receipt and a
Merkle proof, checked by the contract) and *claims* (``FragmentFailureReported``: the
requester's word that a holder's delivered fragments were wrong or that none came by the
deadline; the contract only checks that the claim is possible).

Durability events read as what they did: a holder exiting or marked failed, a shard
released by its holder, assigned to a new holder and repaired (the new holder confirmed it
against its leaf), a re-deal request (a retrieval whose purpose is re-dealing the keys), a
re-dealt fragment set (a pending epoch), its custody confirmations and its activation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shardkey.audit.committee import COMMITTEE_EVENTS, describe_committee, fold_committee
from shardkey.chain.bindings import PARAM_FIELDS, ShardKeyChain, as_tuple
from shardkey.chain.events import ChainEvent, EventDecoder
from shardkey.chain.model import FragmentFailureKind
from shardkey.policy.evaluate import DenialReason
from shardkey.policy.geo import e6_to_degrees

ATTESTATION_FIELDS = ("requester", "latE6", "lonE6", "accuracyM", "issuedAt", "nonce")
CLAIMS = {FragmentFailureKind.WRONG: "wrong fragments (did not verify against their commitments)",
          FragmentFailureKind.MISSING: "missing fragments (none delivered by the deadline)"}


def collect_events(chain: ShardKeyChain, dataset: bytes | None = None) -> list[ChainEvent]:
    """Every ShardKey event from the deployment block on, in chain order (optionally one dataset)."""
    decoder = EventDecoder(chain.contracts)
    latest = chain.client.block_number()
    events = decoder.decode_all(chain.client.logs(decoder.addresses, chain.deployment.start_block, latest))
    if dataset is None:
        return events
    requests = {e.args["requestId"] for e in events
                if e.name == "RetrievalRequested" and bytes(e.args["datasetId"]) == dataset}
    return [e for e in events
            if ("datasetId" in e.args and bytes(e.args["datasetId"]) == dataset)
            or ("requestId" in e.args and e.args["requestId"] in requests)]


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _named(address: str, names: Mapping[str, str]) -> str:
    return names.get(address, address)


def describe(event: ChainEvent, names: Mapping[str, str]) -> dict[str, Any]:
    """One flat audit row for an event: block, event, dataset, request, actor, details."""
    a = event.args
    row: dict[str, Any] = {"block": event.block_number, "tx": _hex(event.tx_hash), "event": event.name,
                           "dataset": _hex(a["datasetId"]) if "datasetId" in a else "",
                           "request": a.get("requestId", ""), "actor": "", "details": ""}
    if event.name == "RetrievalRequested":
        att = as_tuple(a["attestation"], ATTESTATION_FIELDS)
        row["actor"] = _named(a["requester"], names)
        location = "no location"
        if int(a["attestor"], 16) != 0:
            location = (f"at {e6_to_degrees(att[1]):.5f},{e6_to_degrees(att[2]):.5f} ±{att[3]} m "
                        f"attested by {_named(a['attestor'], names)}")
        row["details"] = f"policy v{a['policyVersion']}, {location}"
    elif event.name == "RetrievalDenied":
        reason = DenialReason(int(a["reason"]))
        by = a["by"]
        row["actor"] = "contract" if int(by, 16) == 0 else _named(by, names)
        row["details"] = f"{reason.label}: {reason.description}"
    elif event.name == "ApprovalRecorded":
        row["actor"] = _named(a["approver"], names)
        row["details"] = "by EIP-712 signature" if a["bySignature"] else "by transaction"
    elif event.name == "RetrievalApproved":
        row["details"] = f"open until {a['deadline']}"
    elif event.name in ("TokenIssued", "FragmentsDelivered"):
        row["actor"] = _named(a["holder"], names)
    elif event.name == "FragmentFailureReported":
        row["actor"] = _named(a["holder"], names)
        row["details"] = f"claim: {_claim(int(a['kind']))}"
    elif event.name == "RetrievalCompleted":
        row["actor"] = _named(a["requester"], names)
    elif event.name == "ShardIntegrityFailureProven":
        row["actor"] = _named(a["holder"], names)
        row["details"] = (f"shard {a['shardIndex']} served {_hex(a['servedHash'])[:18]}.., "
                          f"expected {_hex(a['expectedHash'])[:18]}.. (proven)")
    elif event.name == "DatasetRegistered":
        p = as_tuple(a["params"], PARAM_FIELDS)
        row["actor"] = _named(a["owner"], names)
        row["details"] = (f"{p[5]} shards, k={p[1]} p={p[2]}, t={p[6]} of {len(p[8])}, "
                          f"{p[4]} bytes")
    elif event.name in ("CustodyConfirmed",):
        row["actor"] = _named(a["holder"], names)
        row["details"] = f"{a['confirmations']}/{a['required']}"
    elif event.name == "PolicyUpdated":
        row["details"] = f"version {a['version']}"
    elif event.name in ("DatasetRevoked", "HolderActivated", "HolderRetired"):
        row["actor"] = _named(a.get("by", ""), names)
    elif event.name in ("HolderRegistered", "HolderUpdated"):
        row["actor"] = _named(a["holder"], names)
        row["details"] = a.get("endpoint", "")
    elif event.name in DURABILITY_EVENTS:
        _describe_durability(event, names, row)
    elif event.name in COMMITTEE_EVENTS:
        describe_committee(event, names, row)
    return row


DURABILITY_EVENTS = frozenset({
    "HolderExiting", "HolderFailed", "ShardReleased", "ShardAssigned", "ShardRepaired", "RedealRequested",
    "FragmentsRedealt", "FragmentCustodyConfirmed", "FragmentEpochActivated", "RetrievalCoordinatorSet"})


def _describe_durability(event: ChainEvent, names: Mapping[str, str], row: dict[str, Any]) -> None:
    """Exit, failure, repair and re-deal rows."""
    a = event.args
    if event.name == "HolderExiting":
        row["actor"] = _named(a["holder"], names)
        row["details"] = "announced its exit (no new data; serves until repaired away)"
    elif event.name == "HolderFailed":
        row["actor"] = _named(a["by"], names)
        row["details"] = f"marked {_named(a['holder'], names)} failed"
    elif event.name == "ShardReleased":
        row["actor"] = _named(a["holder"], names)
        row["details"] = f"shard {a['shardIndex']} released (lost by its holder)"
    elif event.name == "ShardAssigned":
        row["actor"] = _named(a["by"], names)
        row["details"] = (f"shard {a['shardIndex']} assigned from {_named(a['from'], names)} "
                          f"to {_named(a['to'], names)} (pending its confirmation)")
    elif event.name == "ShardRepaired":
        row["actor"] = _named(a["newHolder"], names)
        row["details"] = (f"shard {a['shardIndex']} repaired: now held by {_named(a['newHolder'], names)}, "
                          f"was {_named(a['oldHolder'], names)}")
    elif event.name == "RedealRequested":
        row["actor"] = _named(a["owner"], names)
        row["details"] = "re-deal: the owner retrieves the keys to deal them to a new fragment set"
    elif event.name == "FragmentsRedealt":
        holders = ", ".join(_named(h, names) for h in a["fragmentHolders"])
        row["details"] = (f"fragment epoch {a['epoch']} (pending), re-deal request {a['redealRequestId']}: "
                          f"t={a['threshold']} of {len(a['fragmentHolders'])}: {holders}")
    elif event.name == "FragmentCustodyConfirmed":
        row["actor"] = _named(a["holder"], names)
        row["details"] = f"epoch {a['epoch']}: {a['confirmations']}/{a['required']}"
    elif event.name == "FragmentEpochActivated":
        row["details"] = f"fragment epoch {a['epoch']} current; older epochs refused on chain"
    elif event.name == "RetrievalCoordinatorSet":
        row["actor"] = _named(a["by"], names)
        row["details"] = f"coordinator {_named(a['coordinator'], names)}"


def _claim(kind: int) -> str:
    try:
        return CLAIMS[FragmentFailureKind(kind)]
    except (ValueError, KeyError):
        return f"unknown claim kind {kind}"


@dataclass
class RequestHistory:
    """Everything that happened to one request."""

    request_id: int
    dataset: str = ""
    purpose: str = "retrieval"  # "re-deal" for the owner's requestRedeal
    requester: str = ""
    location: str = ""
    outcome: str = "pending"
    approvals: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)
    proofs: list[str] = field(default_factory=list)  # proven shard integrity failures
    claims: list[str] = field(default_factory=list)  # fragment failure claims, by kind
    released: list[str] = field(default_factory=list)  # KOS committee members that released their shares
    member_denials: list[str] = field(default_factory=list)  # members that denied, with their reasons


def request_histories(events: list[ChainEvent], names: Mapping[str, str]) -> list[RequestHistory]:
    """Fold request events into one history per request."""
    histories: dict[int, RequestHistory] = {}
    for event in events:
        if "requestId" not in event.args:
            continue
        row = describe(event, names)
        h = histories.setdefault(int(event.args["requestId"]), RequestHistory(int(event.args["requestId"])))
        if event.name == "RetrievalRequested":
            h.dataset, h.requester, h.location = row["dataset"], row["actor"], row["details"]
        elif event.name == "RedealRequested":
            h.purpose = "re-deal"
        elif event.name == "RetrievalDenied":
            h.outcome = f"denied by {row['actor']}: {row['details']}"
        elif event.name == "ApprovalRecorded":
            h.approvals.append(row["actor"])
        elif event.name == "RetrievalApproved":
            h.outcome = "approved"
        elif event.name == "TokenIssued":
            h.tokens.append(row["actor"])
        elif event.name == "FragmentsDelivered":
            h.deliveries.append(row["actor"])
        elif event.name == "RetrievalCompleted":
            h.outcome = "completed"
        elif event.name == "ShardIntegrityFailureProven":
            h.proofs.append(f"{row['actor']}: {row['details']}")
        elif event.name == "FragmentFailureReported":
            h.claims.append(f"{row['actor']}: {row['details'].removeprefix('claim: ')}")
        elif event.name in COMMITTEE_EVENTS:
            fold_committee(event, row, names, h.released, h.member_denials, h.proofs, h.claims)
    return [histories[k] for k in sorted(histories)]
