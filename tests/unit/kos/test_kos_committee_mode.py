"""Which key holder a dataset is dealt to (the committee marker, one rule), the owner's choice of
target, the devnet's committee size check and the test-only wrong-share hook."""

from __future__ import annotations

import os

import pytest

from shardkey.chain.committee import CommitteeEpoch
from shardkey.client.kos_target import KosTarget
from shardkey.crypto.committee_envelope import (
    committee_marker,
    dealt_committee_epoch,
    parse_committee_marker,
)
from shardkey.crypto.errors import CommitteeInputError
from shardkey.devnet.committee import check_committee
from shardkey.devnet.process import DevnetError
from shardkey.faults import CORRUPT_SHARES_ENV, corrupt_shares_for


def test_marker_is_magic_then_the_epoch_big_endian() -> None:
    assert committee_marker(1) == b"SKC1" + (1).to_bytes(8, "big")
    assert len(committee_marker(2**64 - 1)) == 12
    for epoch in (1, 7, 2**40):
        assert parse_committee_marker(committee_marker(epoch)) == epoch


@pytest.mark.parametrize("blob", [b"", b"SKC1", b"SKC1" + bytes(8), b"SKC2" + (1).to_bytes(8, "big"),
                                  b"SKC1" + (1).to_bytes(9, "big"), os.urandom(1200)])
def test_anything_else_is_not_a_marker(blob: bytes) -> None:
    assert parse_committee_marker(blob) is None


def test_marker_of_epoch_zero_is_refused() -> None:
    with pytest.raises(CommitteeInputError, match="at least 1"):
        committee_marker(0)


def test_a_dataset_is_a_committee_dataset_only_when_every_slot_marks_one_epoch() -> None:
    assert dealt_committee_epoch([committee_marker(3)] * 4) == 3
    assert dealt_committee_epoch([committee_marker(3), committee_marker(4)]) is None
    assert dealt_committee_epoch([committee_marker(3), os.urandom(100)]) is None
    assert dealt_committee_epoch([os.urandom(100)] * 2) is None


def test_committee_target_marks_the_slot_and_keeps_a_copy_until_wiped() -> None:
    epoch = CommitteeEpoch(epoch=5, members=("0x" + "11" * 20,), hpke_public_keys=(b"k",), threshold=1)
    target = KosTarget(31337, committee=epoch)
    wrap_key = bytearray(os.urandom(32))
    assert target.slot(0, wrap_key) == committee_marker(5)
    wrap_key[:] = bytes(32)  # the caller wipes its buffer: the target's copy is its own
    kept = target._keys[0]
    assert kept != bytes(32)
    target.wipe()
    assert kept == bytes(32) and not target._keys


@pytest.mark.parametrize(("members", "threshold", "expected"), [(1, None, 1), (3, None, 2), (4, None, 3),
                                                                (3, 3, 3), (3, 1, 1)])
def test_committee_threshold_defaults_to_a_majority(members: int, threshold: int | None,
                                                    expected: int) -> None:
    assert check_committee(members, threshold) == expected


@pytest.mark.parametrize(("members", "threshold", "message"), [
    (3, 4, "--kos-threshold must be between 1 and --kos"), (0, None, "--kos must be between 1 and 32"),
    (33, None, "--kos must be between")])
def test_a_bad_committee_is_refused(members: int, threshold: int | None, message: str) -> None:
    with pytest.raises(DevnetError, match=message):
        check_committee(members, threshold)


def test_corrupt_shares_hook_is_off_unless_the_variable_names_holders(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CORRUPT_SHARES_ENV, raising=False)
    assert corrupt_shares_for() == frozenset()
    monkeypatch.setenv(CORRUPT_SHARES_ENV, "")
    assert corrupt_shares_for() == frozenset()
    monkeypatch.setenv(CORRUPT_SHARES_ENV, "0xAbC, ,0xdef")
    assert corrupt_shares_for() == {"0xabc", "0xdef"}
