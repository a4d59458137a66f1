"""Fragment bundles: exact layout, round trips, and one error per malformed input."""

from __future__ import annotations

import os
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.crypto import bundle as b
from shardkey.crypto.errors import (
    BundleCountError,
    BundleError,
    BundleMismatchError,
    BundleOrderError,
    BundleTruncatedError,
    BundleUnwrapError,
    BundleVersionError,
    CryptoError,
    CryptoInputError,
)
from shardkey.crypto.shamir import Share
from shardkey.errors import RestoreError

DS = bytes.fromhex("44" * 32)
W = bytes(range(32))


def make(n: int = 3, x: int = 2) -> b.FragmentBundle:
    return b.FragmentBundle.build(DS, x, {i * 3: bytes([i]) * 32 for i in range(n)})


def rng(seed: int = 0) -> b.Rng:
    return random.Random(seed).randbytes


def test_plaintext_layout() -> None:
    data = b.pack_bundle(make(2, x=9))
    assert data == (
        b"\x01"
        + DS
        + b"\x09"
        + (2).to_bytes(4, "big")
        + (0).to_bytes(4, "big")
        + bytes(32)
        + (3).to_bytes(4, "big")
        + b"\x01" * 32
    )


def test_wrapped_layout() -> None:
    bun = make()
    wrapped = b.wrap_bundle(W, bun, rng(1))
    assert wrapped[0] == 1
    nonce = wrapped[1:13]
    assert nonce == rng(1)(12)
    aad = b"shardkey/bundle/v1" + DS + b"\x02"
    assert AESGCM(W).decrypt(nonce, wrapped[13:], aad) == b.pack_bundle(bun)


@settings(max_examples=30, deadline=None)
@given(
    x=st.integers(1, 255),
    indices=st.sets(st.integers(0, 2**32 - 1), max_size=20),
    seed=st.integers(0, 2**32),
)
def test_roundtrip(x: int, indices: set[int], seed: int) -> None:
    r = random.Random(seed)
    frags = {i: r.randbytes(32) for i in indices}
    bun = b.FragmentBundle.build(DS, x, frags)
    assert [i for i, _ in bun.entries] == sorted(indices)
    assert b.unpack_bundle(b.pack_bundle(bun), dataset_id=DS, x=x) == bun
    assert b.unwrap_bundle(W, b.wrap_bundle(W, bun, r.randbytes), DS, x) == bun
    assert bun.shares() == {i: Share(x, s) for i, s in frags.items()}


def test_empty_bundle() -> None:
    bun = b.FragmentBundle.build(DS, 1, {})
    assert b.unpack_bundle(b.pack_bundle(bun)) == bun
    assert len(b.pack_bundle(bun)) == b.HEADER_LEN


def test_repr_hides_shares() -> None:
    bun = b.FragmentBundle.build(DS, 1, {0: b"\xab" * 32})
    assert "abab" not in repr(bun)


# --- malformed plaintext ---------------------------------------------------------


def test_bad_version() -> None:
    data = bytearray(b.pack_bundle(make()))
    data[0] = 2
    with pytest.raises(BundleVersionError, match="unknown bundle version 2"):
        b.unpack_bundle(bytes(data))


@pytest.mark.parametrize("n", [0, 1, 20, 37])
def test_truncated_header(n: int) -> None:
    with pytest.raises(BundleTruncatedError):
        b.unpack_bundle(b.pack_bundle(make())[:n])


@pytest.mark.parametrize("delta", [-1, -36, 1, 36])
def test_count_mismatch_by_length(delta: int) -> None:
    data = b.pack_bundle(make())
    data = data[:delta] if delta < 0 else data + bytes(delta)
    with pytest.raises(BundleCountError, match="declares 3 entries"):
        b.unpack_bundle(data)


def test_count_mismatch_by_field() -> None:
    data = bytearray(b.pack_bundle(make()))
    data[34:38] = (4).to_bytes(4, "big")
    with pytest.raises(BundleCountError, match="declares 4 entries"):
        b.unpack_bundle(bytes(data))


@pytest.mark.parametrize("second", [0, 5])  # equal to, and lower than, the first index
def test_non_increasing_indices(second: int) -> None:
    data = bytearray(b.pack_bundle(make(2)))
    data[38:42] = (5).to_bytes(4, "big")
    data[74:78] = second.to_bytes(4, "big")
    with pytest.raises(BundleOrderError, match=f"entry 1: shard {second} does not follow shard 5"):
        b.unpack_bundle(bytes(data))


def test_expected_dataset_and_x() -> None:
    data = b.pack_bundle(make(x=2))
    with pytest.raises(BundleMismatchError, match="expected 0x5555"):
        b.unpack_bundle(data, dataset_id=bytes.fromhex("55" * 32))
    with pytest.raises(BundleMismatchError, match="x=2, expected x=3"):
        b.unpack_bundle(data, x=3)
    zero_x = bytearray(data)
    zero_x[33] = 0
    with pytest.raises(BundleMismatchError, match="x-coordinate is 0"):
        b.unpack_bundle(bytes(zero_x))


def test_build_rejects_bad_input() -> None:
    with pytest.raises(BundleOrderError):
        b.FragmentBundle.build(DS, 1, [(1, bytes(32)), (1, bytes(32))])
    with pytest.raises(CryptoInputError, match="share for shard 4 must be 32 bytes"):
        b.FragmentBundle.build(DS, 1, {4: bytes(31)})
    with pytest.raises(CryptoInputError, match=r"x must be in 1\.\.255"):
        b.FragmentBundle.build(DS, 0, {})
    with pytest.raises(CryptoInputError, match="dataset_id"):
        b.FragmentBundle.build(DS[:4], 1, {})
    with pytest.raises(CryptoInputError, match="shard_index"):
        b.FragmentBundle.build(DS, 1, {2**32: bytes(32)})


# --- malformed wrapped form ------------------------------------------------------


def test_unwrap_wrong_dataset_x_key_and_tamper() -> None:
    wrapped = b.wrap_bundle(W, make(x=2), os.urandom)
    with pytest.raises(BundleUnwrapError, match="x=2 failed authentication") as info:
        b.unwrap_bundle(W, wrapped, bytes.fromhex("66" * 32), 2)
    assert isinstance(info.value, RestoreError)
    assert isinstance(info.value, CryptoError)
    with pytest.raises(BundleUnwrapError, match="x=3"):
        b.unwrap_bundle(W, wrapped, DS, 3)
    with pytest.raises(BundleUnwrapError):
        b.unwrap_bundle(bytes(32), wrapped, DS, 2)
    for pos in range(1, len(wrapped), 7):
        bad = bytearray(wrapped)
        bad[pos] ^= 0x80
        with pytest.raises(BundleUnwrapError):
            b.unwrap_bundle(W, bytes(bad), DS, 2)


def test_unwrap_format_errors() -> None:
    wrapped = b.wrap_bundle(W, make(), os.urandom)
    with pytest.raises(BundleVersionError, match="wrapped bundle version 7"):
        b.unwrap_bundle(W, b"\x07" + wrapped[1:], DS, 2)
    with pytest.raises(BundleTruncatedError, match="empty"):
        b.unwrap_bundle(W, b"", DS, 2)
    with pytest.raises(BundleTruncatedError, match="truncated: 20 bytes"):
        b.unwrap_bundle(W, wrapped[:20], DS, 2)
    with pytest.raises(CryptoInputError, match="wrap key must be 32 bytes"):
        b.unwrap_bundle(W[:16], wrapped, DS, 2)


def test_unwrap_detects_inner_mismatch() -> None:
    """A writer that sealed a bundle under the wrong AAD context is still caught."""
    inner = b.pack_bundle(make(x=5))
    nonce = bytes(12)
    ct = AESGCM(W).encrypt(nonce, inner, b.bundle_aad(DS, 2))
    with pytest.raises(BundleMismatchError, match="x=5, expected x=2") as info:
        b.unwrap_bundle(W, b"\x01" + nonce + ct, DS, 2)
    assert isinstance(info.value, BundleError)
