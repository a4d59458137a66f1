"""``shardkey audit log`` keeps proofs (shard integrity failures proven on chain) apart from
claims (fragment failures the requester reported, by kind)."""

from __future__ import annotations

from typing import Any

from shardkey.audit.log import describe, request_histories
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import FragmentFailureKind

DATASET = b"\x11" * 32
LIAR = "0x" + "aa" * 20
SILENT = "0x" + "bb" * 20
CHEAT = "0x" + "cc" * 20


def _event(name: str, index: int, **args: Any) -> ChainEvent:
    return ChainEvent(name=name, args={"requestId": 7, "datasetId": DATASET, **args},
                      address="0x" + "00" * 20, block_number=100 + index, block_hash=b"\x00" * 32,
                      tx_hash=bytes([index]) * 32, log_index=0, contract="RetrievalCoordinator")


EVENTS = [
    _event("FragmentFailureReported", 1, holder=LIAR, kind=int(FragmentFailureKind.WRONG)),
    _event("FragmentFailureReported", 2, holder=SILENT, kind=int(FragmentFailureKind.MISSING)),
    _event("ShardIntegrityFailureProven", 3, holder=CHEAT, shardIndex=4, servedHash=b"\x01" * 32,
           expectedHash=b"\x02" * 32),
]
NAMES = {LIAR: "holder-1", SILENT: "holder-2", CHEAT: "holder-3"}


def test_rows_say_which_is_a_claim_and_which_a_proof() -> None:
    rows = [describe(e, NAMES) for e in EVENTS]
    assert [(r["event"], r["actor"]) for r in rows] == [
        ("FragmentFailureReported", "holder-1"), ("FragmentFailureReported", "holder-2"),
        ("ShardIntegrityFailureProven", "holder-3")]
    assert rows[0]["details"].startswith("claim: wrong fragments")
    assert rows[1]["details"].startswith("claim: missing fragments")
    assert rows[2]["details"].startswith("shard 4 served 0x0101") and rows[2]["details"].endswith("(proven)")


def test_histories_list_proofs_apart_from_claims() -> None:
    (history,) = request_histories(EVENTS, NAMES)
    assert history.request_id == 7
    assert [p.split(":")[0] for p in history.proofs] == ["holder-3"]
    assert history.claims == ["holder-1: wrong fragments (did not verify against their commitments)",
                              "holder-2: missing fragments (none delivered by the deadline)"]


def test_an_unknown_claim_kind_is_shown_not_dropped() -> None:
    row = describe(_event("FragmentFailureReported", 1, holder=LIAR, kind=9), NAMES)
    assert row["details"] == "claim: unknown claim kind 9"
