"""Audit rows of the threshold KOS committee (``KosCommittee`` events).

For every request the auditor sees which members released their shares and which denied, with
the reason each gave; a wrong share a holder proved on chain (``ShareFaultProven``: the member's
own signature over a share that does not match the owner's commitment) is a *proof*, kept apart
from a holder's *claim* (``ShareFailureReported``: an envelope that did not open or whose
signature did not recover; anybody could have sent garbage, so it proves nothing about the member).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shardkey.chain.events import ChainEvent
from shardkey.policy.evaluate import DenialReason

COMMITTEE_EVENTS = frozenset({"CommitteeEpochStarted", "DealRegistered", "SharesReleased", "ReleaseDenied",
                              "ShareFaultProven", "ShareFailureReported"})
SHARE_CLAIMS = {1: "envelope unreadable (did not open or decode)", 2: "signature does not recover the member"}


def _named(address: str, names: Mapping[str, str]) -> str:
    return names.get(address, address)


def describe_committee(event: ChainEvent, names: Mapping[str, str], row: dict[str, Any]) -> None:
    """Fill ``row`` (actor, details) for one committee event."""
    a = event.args
    if event.name == "CommitteeEpochStarted":
        members = ", ".join(_named(m, names) for m in a["members"])
        row["details"] = (f"committee epoch {a['epoch']}: threshold {a['threshold']} of "
                          f"{len(a['members'])}: {members}")
    elif event.name == "DealRegistered":
        root = bytes(a["root"]).hex()[:16]
        row["details"] = (f"fragment epoch {a['fragmentEpoch']} dealt to committee epoch "
                          f"{a['committeeEpoch']} ({len(a['commitments'])} share commitments, "
                          f"root 0x{root}..)")
    elif event.name == "SharesReleased":
        row["actor"] = _named(a["member"], names)
        row["details"] = f"released its shares to {len(a['sealedEnvelopes'])} fragment holders"
    elif event.name == "ReleaseDenied":
        row["actor"] = _named(a["member"], names)
        row["details"] = f"member denied: {DenialReason.text(int(a['reason']))}"
    elif event.name == "ShareFaultProven":
        row["actor"] = _named(a["holder"], names)
        row["details"] = (f"proved {_named(a['member'], names)} signed a share that does not match its "
                          "commitment (proven)")
    elif event.name == "ShareFailureReported":
        row["actor"] = _named(a["holder"], names)
        kind = SHARE_CLAIMS.get(int(a["kind"]), f"unknown claim kind {a['kind']}")
        row["details"] = f"claim against {_named(a['member'], names)}: {kind}"


def fold_committee(event: ChainEvent, row: Mapping[str, Any], names: Mapping[str, str],
                   released: list[str], denied: list[str], proofs: list[str], claims: list[str]) -> None:
    """Add one committee event of a request to its history's lists."""
    a = event.args
    if event.name == "SharesReleased":
        released.append(str(row["actor"]))
    elif event.name == "ReleaseDenied":
        denied.append(f"{row['actor']}: {DenialReason.text(int(a['reason']))}")
    elif event.name == "ShareFaultProven":
        proofs.append(f"{_named(a['member'], names)} (KOS member): wrong share to {row['actor']} (proven)")
    elif event.name == "ShareFailureReported":
        claims.append(f"{row['actor']}: {row['details']}")
