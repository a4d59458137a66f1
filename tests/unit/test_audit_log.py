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


M1, M2, M3, H1 = ("0x" + c * 20 for c in ("d1", "d2", "d3", "e1"))
COMMITTEE_NAMES = {M1: "kos-1", M2: "kos-2", M3: "kos-3", H1: "holder-1"}


def _committee(name: str, index: int, **args: Any) -> ChainEvent:
    event = _event(name, index, **args)
    return ChainEvent(**{**event.__dict__, "contract": "KosCommittee"})


def test_histories_name_the_members_that_released_and_those_that_denied_with_reasons() -> None:
    events = [
        _committee("SharesReleased", 1, member=M1, committeeEpoch=1, sealedEnvelopes=[b"x"] * 5),
        _committee("ReleaseDenied", 2, member=M2, reason=15),
        _committee("ShareFaultProven", 3, member=M3, holder=H1, epoch=1, root=b"\x00" * 32),
        _committee("ShareFailureReported", 4, member=M2, holder=H1, kind=1),
    ]
    rows = [describe(e, COMMITTEE_NAMES) for e in events]
    assert [r["actor"] for r in rows] == ["kos-1", "kos-2", "holder-1", "holder-1"]
    assert rows[0]["details"] == "released its shares to 5 fragment holders"
    assert rows[1]["details"].startswith("member denied: DatasetRevoked")
    (history,) = request_histories(events, COMMITTEE_NAMES)
    assert history.released == ["kos-1"]
    assert [d.split(":")[0] for d in history.member_denials] == ["kos-2"]
    assert history.proofs == ["kos-3 (KOS member): wrong share to holder-1 (proven)"]
    assert history.claims == ["holder-1: claim against kos-2: envelope unreadable (did not open or decode)"]
