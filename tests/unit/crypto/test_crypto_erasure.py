"""Erasure coding: layout, round trips, any-k-of-m decoding, parameter validation."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.crypto import erasure
from shardkey.crypto.errors import ErasureDecodeError, ErasureParameterError
from shardkey.errors import RestoreError, UsageError


def roundtrip(data: bytes, k: int, p: int, shard_size: int, pick: random.Random) -> bytes:
    stripes = erasure.stripe_count(len(data), k, shard_size)
    out = []
    for s in range(stripes):
        start, end = erasure.stripe_bounds(s, len(data), k, shard_size)
        shards = erasure.encode_stripe(data[start:end], k, p, shard_size)
        assert len(shards) == k + p
        assert all(len(x) == shard_size for x in shards)
        keep = pick.sample(range(k + p), k)
        decoded = erasure.decode_stripe({j: shards[j] for j in keep}, k, p, shard_size)
        assert len(decoded) == k * shard_size
        out.append(erasure.trim_stripe(decoded, s, len(data), k, shard_size))
    return b"".join(out)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=1500),
    k=st.integers(1, 6),
    p=st.integers(0, 4),
    shard_size=st.integers(1, 97),
    seed=st.integers(0, 2**32),
)
def test_roundtrip_any_size_any_k_shards(data: bytes, k: int, p: int, shard_size: int, seed: int) -> None:
    assert roundtrip(data, k, p, shard_size, random.Random(seed)) == data


@pytest.mark.parametrize("length", [0, 1, 11, 12, 13, 24, 25, 1000])
def test_roundtrip_edge_lengths(length: int) -> None:
    data = bytes(range(256)) * 4
    data = data[:length]
    assert roundtrip(data, 3, 2, 4, random.Random(length)) == data


def test_every_k_subset_rebuilds_stripe() -> None:
    k, p, size = 3, 3, 8
    data = bytes(range(k * size))
    shards = erasure.encode_stripe(data, k, p, size)
    assert shards[:k] == [data[j * size : (j + 1) * size] for j in range(k)]  # systematic
    for subset in itertools.combinations(range(k + p), k):
        got = erasure.decode_stripe({j: shards[j] for j in reversed(subset)}, k, p, size)
        assert got == data, subset
    # more than k shards is fine too
    assert erasure.decode_stripe(dict(enumerate(shards)), k, p, size) == data


def test_max_width_and_no_parity() -> None:
    shards = erasure.encode_stripe(b"\x42", 1, 255, 1)
    assert len(shards) == 256
    assert erasure.decode_stripe({255: shards[255]}, 1, 255, 1) == b"\x42"
    assert erasure.encode_stripe(b"abcd", 2, 0, 2) == [b"ab", b"cd"]
    assert erasure.decode_stripe({1: b"cd", 0: b"ab"}, 2, 0, 2) == b"abcd"


def test_stripe_layout() -> None:
    assert erasure.stripe_count(0, 4, 10) == 1
    assert erasure.stripe_count(40, 4, 10) == 1
    assert erasure.stripe_count(41, 4, 10) == 2
    assert erasure.shard_count(41, 4, 2, 10) == 12
    assert erasure.shard_location(13, 4, 2) == (2, 1)
    assert erasure.stripe_bounds(1, 41, 4, 10) == (40, 41)
    assert erasure.stripe_bounds(0, 0, 4, 10) == (0, 0)
    assert erasure.trim_stripe(bytes(40), 0, 0, 4, 10) == b""


@pytest.mark.parametrize(
    ("k", "p", "size", "match"),
    [
        (0, 1, 10, "k "),
        (1, -1, 10, "p "),
        (200, 57, 10, "k \\+ p"),
        (2, 1, 0, "shard_size"),
        (2, 1, (1 << 30) + 1, "shard_size"),
    ],
)
def test_bad_parameters(k: int, p: int, size: int, match: str) -> None:
    with pytest.raises(ErasureParameterError, match=match) as info:
        erasure.encode_stripe(b"", k, p, size)
    assert isinstance(info.value, UsageError)


def test_bad_inputs() -> None:
    with pytest.raises(ErasureParameterError, match="more than"):
        erasure.encode_stripe(bytes(9), 2, 1, 4)
    with pytest.raises(ErasureParameterError, match="length"):
        erasure.stripe_count(-1, 2, 4)
    with pytest.raises(ErasureParameterError, match="stripe 2 out of range"):
        erasure.stripe_bounds(2, 8, 2, 4)


def test_decode_errors_name_the_problem() -> None:
    shards = erasure.encode_stripe(b"abcdefgh", 2, 2, 4)
    with pytest.raises(ErasureDecodeError, match=r"stripe 7: need 2 of 4 shards.*\[3\]") as info:
        erasure.decode_stripe({3: shards[3]}, 2, 2, 4, stripe=7)
    assert isinstance(info.value, RestoreError)
    with pytest.raises(ErasureDecodeError, match="position 1 has 3 bytes"):
        erasure.decode_stripe({0: shards[0], 1: shards[1][:3]}, 2, 2, 4)
    with pytest.raises(ErasureDecodeError, match=r"position 4 outside 0\.\.3"):
        erasure.decode_stripe({0: shards[0], 4: shards[1]}, 2, 2, 4)
    with pytest.raises(ErasureDecodeError, match="decoded 3 bytes"):
        erasure.trim_stripe(b"abc", 0, 8, 2, 4)


@settings(max_examples=300, deadline=None)
@given(length=st.integers(0, 1 << 34), k=st.integers(1, 255),
       shard_size=st.integers(1, erasure.MAX_SHARD_SIZE))
def test_a_fitted_shard_size_holds_the_file_in_whole_pages_and_never_adds_a_stripe(
        length: int, k: int, shard_size: int) -> None:
    fitted = erasure.fitted_shard_size(length, k, shard_size)
    assert 1 <= fitted <= shard_size
    assert erasure.fitted_shard_size(length, k, fitted) == fitted  # fitting twice changes nothing
    if fitted == shard_size:
        # kept as asked: the file needs more than a page per shard of it, or the size is a page or less
        assert shard_size <= erasure.SHARD_ALIGN or k * (shard_size - erasure.SHARD_ALIGN) < length
    else:
        assert fitted % erasure.SHARD_ALIGN == 0
        assert erasure.stripe_count(length, k, fitted) == 1  # one stripe, as before
        smallest = fitted == erasure.SHARD_ALIGN
        assert smallest or k * (fitted - erasure.SHARD_ALIGN) < length <= k * fitted


def test_small_files_get_small_shards_and_large_ones_the_size_asked_for() -> None:
    mib = 1 << 20
    assert erasure.fitted_shard_size(0, 3, 4 * mib) == 4096
    assert erasure.fitted_shard_size(1, 3, 4 * mib) == 4096
    assert erasure.fitted_shard_size(mib, 3, 4 * mib) == 352256  # ceil(2^20 / 3) = 349,526 -> 86 pages
    assert erasure.fitted_shard_size(12 * mib, 3, 4 * mib) == 4 * mib
    assert erasure.fitted_shard_size(100 * mib, 3, 4 * mib) == 4 * mib
    assert erasure.fitted_shard_size(10, 3, 1024) == 1024  # a page or less: as asked
    with pytest.raises(ErasureParameterError, match="length"):
        erasure.fitted_shard_size(-1, 3, 4 * mib)
    with pytest.raises(ErasureParameterError, match="shard_size"):
        erasure.fitted_shard_size(10, 3, 0)


def test_a_rebuild_writes_into_the_scratch_buffers_given_and_copies_no_data_block() -> None:
    if erasure.accelerated() is None:
        pytest.skip("ISA-L is not installed: zfec allocates its own outputs")
    k, p, size = 3, 2, 4096 + 17
    data = [bytes(random.Random(j).randbytes(size)) for j in range(k)]
    shards = dict(enumerate([*data, *erasure.encode_blocks(data, k, p)]))
    have = {j: memoryview(bytearray(shards[j])) for j in (0, 3, 4)}  # data shards 1 and 2 lost
    scratch = [bytearray(size + 100), bytearray(size + 100)]
    blocks = erasure.decode_blocks(have, k, p, scratch=scratch)
    assert [bytes(b) for b in blocks] == data
    assert blocks[0] is have[0]  # the data block that came is used as it is
    assert bytes(scratch[0][:size]) == data[1] and bytes(scratch[1][:size]) == data[2]
    # Too few scratch buffers (or too short ones): the rebuild makes its own, still right.
    assert [bytes(b) for b in erasure.decode_blocks(have, k, p, scratch=[bytearray(size)])] == data
    assert [bytes(b) for b in erasure.decode_blocks(have, k, p, scratch=[bytearray(10)] * 2)] == data
