"""What a fetch did about the misbehaviour it saw: each report sent, skipped or reverted.

A shard-failure proof (``reportShardFailure``) is checked on chain; a fragment failure
(``reportFragmentFailure``) is a claim. ``shardkey fetch`` prints one line per report
(:func:`describe_report`), so a proof that was skipped or reverted is never shown as proven.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from shardkey.chain.errors import ChainError, TransactionReverted


class ReportOutcome(StrEnum):
    """What became of one misbehaviour report of a fetch."""

    MINED = "mined"  # the transaction was mined: a proof proven, a claim recorded
    SKIPPED = "skipped"  # not sent (``detail`` says why)
    REVERTED = "reverted"  # sent and refused by the contract (``detail``: its error)


class ReportKind(StrEnum):
    """What a report says on chain."""

    SHARD_PROOF = "shard proof"  # reportShardFailure: a proof, checked on chain
    WRONG_FRAGMENTS = "wrong fragments claim"  # reportFragmentFailure(Wrong): a claim
    MISSING_FRAGMENTS = "missing fragments claim"  # reportFragmentFailure(Missing): a claim


@dataclass(frozen=True)
class ChainReport:
    """One report a fetch sent, or had grounds for and skipped."""

    kind: ReportKind
    holder: str
    outcome: ReportOutcome
    detail: str  # the transaction hash when mined, else why not
    shard: int | None = None

    def as_json(self) -> dict[str, object]:
        """The report as the CLI's ``--json`` prints it."""
        return {"kind": self.kind.value, "holder": self.holder, "shard": self.shard,
                "outcome": self.outcome.value, "detail": self.detail}


def send_report(kind: ReportKind, holder: str, send: Callable[[], object],
                shard: int | None = None) -> ChainReport:
    """Send one report and say what happened (a revert or an outage is not fatal to a fetch)."""
    try:
        receipt = send()
    except TransactionReverted as exc:
        return ChainReport(kind, holder, ReportOutcome.REVERTED, exc.error, shard)
    except ChainError as exc:
        return ChainReport(kind, holder, ReportOutcome.SKIPPED, f"not mined: {exc}", shard)
    tx = receipt.get("transactionHash", b"") if isinstance(receipt, Mapping) else b""
    return ChainReport(kind, holder, ReportOutcome.MINED, "tx 0x" + bytes(tx).hex(), shard)


_FAULT = {ReportKind.SHARD_PROOF: "served a shard that failed its hash",
          ReportKind.WRONG_FRAGMENTS: "delivered wrong fragments",
          ReportKind.MISSING_FRAGMENTS: "has not delivered its fragments"}
_DONE = {ReportKind.SHARD_PROOF: "proof mined, proven on chain",
         ReportKind.WRONG_FRAGMENTS: "claim (Wrong) recorded on chain",
         ReportKind.MISSING_FRAGMENTS: "claim (Missing) recorded on chain"}


def describe_report(report: ChainReport, names: Mapping[str, str] | None = None) -> str:
    """One line saying what a report's holder did and what became of the report."""
    holder = (names or {}).get(report.holder, report.holder)
    shard = f" (shard {report.shard})" if report.shard is not None else ""
    what = f"{holder} {_FAULT[report.kind]}{shard}"
    if report.outcome == ReportOutcome.MINED:
        return f"{what}: {_DONE[report.kind]} ({report.detail})"
    if report.outcome == ReportOutcome.REVERTED:
        return f"{what}: {report.kind.value} sent but reverted ({report.detail}); nothing recorded"
    return f"{what}: {report.kind.value} not sent ({report.detail})"
