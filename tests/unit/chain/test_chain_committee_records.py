"""The committee's event records (DealRecord, Release) and the marker helpers: deal-order
indexing, decoding of SharesReleased / ReleaseDenied, and what is or is not a marker."""

from __future__ import annotations

import pytest

from shardkey.chain.committee import DealRecord, deal_from_event, release_from_event
from shardkey.chain.errors import ChainError
from shardkey.chain.events import ChainEvent
from shardkey.crypto.committee_envelope import committee_marker, parse_committee_marker
from shardkey.crypto.errors import CommitteeInputError

MEMBER = "0x" + "ab" * 20
DS = b"\x05" * 32


def _event(name: str, **args: object) -> ChainEvent:
    return ChainEvent(name=name, args=args, address=MEMBER, block_number=12, block_hash=b"\0" * 32,
                      tx_hash=b"\1" * 32, log_index=3)


def _deal(holders: int = 3, members: int = 5) -> DealRecord:
    n = holders * members
    return deal_from_event(_event("DealRegistered", datasetId=DS, fragmentEpoch=2, committeeEpoch=4,
                                  root=b"\x09" * 32, commitments=[bytes([k]) * 32 for k in range(n)],
                                  sealedShares=[b"s%d" % k for k in range(n)]))


def test_deal_record_indexes_in_deal_order() -> None:
    d = _deal()
    assert (d.dataset_id, d.fragment_epoch, d.committee_epoch, d.block_number) == (DS, 2, 4, 12)
    for j in range(3):
        for i in range(5):
            assert d.commitment(j, i, 5) == bytes([j * 5 + i]) * 32
            assert d.sealed_share(j, i, 5) == b"s%d" % (j * 5 + i)


@pytest.mark.parametrize(("j", "i", "m"),
                         [(3, 0, 5), (0, 5, 5), (-1, 0, 5), (0, -1, 5), (0, 0, 4), (0, 0, 0)])
def test_deal_record_refuses_positions_outside_the_deal(j: int, i: int, m: int) -> None:
    with pytest.raises(ChainError):
        _deal().commitment(j, i, m)


def test_release_events_decode() -> None:
    released = release_from_event(_event("SharesReleased", requestId=7, datasetId=DS, member=MEMBER,
                                         committeeEpoch=1, sealedEnvelopes=[b"a", b"b"]))
    assert (released.request_id, released.released, released.reason, released.sealed_envelopes) == (
        7, True, 0, (b"a", b"b"))
    assert released.member == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    denied = release_from_event(_event("ReleaseDenied", requestId=7, datasetId=DS, member=MEMBER, reason=17))
    assert (denied.released, denied.reason, denied.sealed_envelopes, denied.block_number) == (
        False, 17, (), 12)
    with pytest.raises(ChainError, match="not a committee release event"):
        release_from_event(_event("TokenIssued", requestId=7, holder=MEMBER, token=b"t"))


def test_committee_marker() -> None:
    assert committee_marker(1) == b"SKC1" + b"\0" * 7 + b"\x01"
    assert parse_committee_marker(committee_marker(2**64 - 1)) == 2**64 - 1
    for bad in (b"", b"SKC1", b"SKC1" + b"\0" * 8, b"SKC2" + b"\0" * 7 + b"\1", committee_marker(3) + b"\0",
                b"\x02" + b"\0" * 80):
        assert parse_committee_marker(bad) is None
    for epoch in (0, -1, 2**64):
        with pytest.raises(CommitteeInputError):
            committee_marker(epoch)
