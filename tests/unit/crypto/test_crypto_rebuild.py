"""Shard format v2 and keyless rebuild: rebuilt shards are the originals byte for byte, and a
corrupted shard is named, never coded into a rebuild."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.crypto import (
    MerkleTree,
    ShardDecryptionError,
    ShardIntegrityError,
    ShardRebuildError,
    check_shard,
    data_shard_indices,
    is_data_shard,
    open_stripe,
    rebuild_shards,
    seal_stripe,
    stored_shard_length,
)
from shardkey.crypto.stream import AAD_PREFIX, MAGIC

DS = bytes(range(32))


def rng(seed: int = 0) -> random.Random:
    return random.Random(seed)


def _bytes(r: random.Random):  # type: ignore[no-untyped-def]
    return lambda n: r.randbytes(n)


Dataset = tuple[list[bytes], list[bytes], list[bytes]]


def _dataset(data: bytes, k: int, p: int, shard_size: int, seed: int) -> Dataset:
    """(shards, digests, keys) of a whole file in shard format v2."""
    r = rng(seed)
    stripe_bytes = k * shard_size
    stripes = max(1, -(-len(data) // stripe_bytes))
    shards, digests, keys = [], [], []
    for s in range(stripes):
        stripe_keys = [r.randbytes(32) for _ in range(k)]
        keys += stripe_keys
        for shard, digest in seal_stripe(stripe_keys, DS, s, data[s * stripe_bytes:(s + 1) * stripe_bytes],
                                         k, p, shard_size, _bytes(r)):
            shards.append(shard)
            digests.append(digest)
    return shards, digests, keys


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 6), p=st.integers(0, 5), shard_size=st.integers(1, 300),
       length=st.integers(0, 2000), seed=st.integers(0, 2**32))
def test_rebuilt_shards_are_byte_identical_for_any_loss_of_at_most_p(
        k: int, p: int, shard_size: int, length: int, seed: int) -> None:
    r = rng(seed)
    data = r.randbytes(length)
    shards, digests, _ = _dataset(data, k, p, shard_size, seed)
    m = k + p
    for stripe in range(len(shards) // m):
        indices = list(range(stripe * m, (stripe + 1) * m))
        lost = r.sample(indices, r.randint(0, p))
        kept = [i for i in indices if i not in lost]
        given_ = {i: shards[i] for i in r.sample(kept, r.randint(k, len(kept)))}
        rebuilt = rebuild_shards(given_, k, p, lost, digests)
        assert sorted(rebuilt) == sorted(lost)
        for i in lost:
            assert rebuilt[i] == shards[i]
            assert hashlib.sha256(rebuilt[i]).digest() == digests[i]


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 5), p=st.integers(0, 4), shard_size=st.integers(1, 200),
       length=st.integers(0, 1500), seed=st.integers(0, 2**32))
def test_any_k_shards_open_the_stripe_and_parity_has_no_key(
        k: int, p: int, shard_size: int, length: int, seed: int) -> None:
    r = rng(seed)
    data = r.randbytes(length)
    shards, _, keys = _dataset(data, k, p, shard_size, seed)
    m = k + p
    assert all(len(s) == stored_shard_length(shard_size) for s in shards)
    assert data_shard_indices(len(shards), k, p) == [i for i in range(len(shards)) if is_data_shard(i, k, p)]
    assert len(keys) == len(data_shard_indices(len(shards), k, p)) == len(shards) // m * k
    out = b""
    for stripe in range(len(shards) // m):
        chosen = r.sample(range(m), k)
        stripe_keys = {j: keys[stripe * k + j] for j in range(k)}
        out += open_stripe(stripe_keys, DS, stripe, {j: shards[stripe * m + j] for j in chosen}, k, p)
    assert out[:length] == data
    assert out[length:] == bytes(len(out) - length)


def test_data_shards_carry_the_v2_header_and_aad() -> None:
    shards, _, keys = _dataset(b"x" * 100, 2, 1, 64, 1)
    assert MAGIC == b"SKS2" and AAD_PREFIX == b"shardkey/shard/v2"
    assert shards[0][:4] == shards[1][:4] == b"SKS2"
    # a data ciphertext authenticates only as its own shard index
    with pytest.raises(ShardDecryptionError):
        open_stripe({0: keys[1], 1: keys[0]}, DS, 0, {0: shards[0], 1: shards[1]}, 2, 1)


@pytest.mark.parametrize("where", [0, 17, -1])
def test_a_corrupted_input_shard_is_named_and_never_used(where: int) -> None:
    k, p = 3, 2
    shards, digests, _ = _dataset(bytes(range(256)) * 10, k, p, 500, 7)
    bad = bytearray(shards[3])
    bad[where] ^= 1
    given_ = {0: shards[0], 1: shards[1], 3: bytes(bad), 4: shards[4]}
    with pytest.raises(ShardIntegrityError, match="shard 3") as caught:
        rebuild_shards(given_, k, p, [2], digests)
    assert caught.value.shard_index == 3
    given_.pop(3)  # drop the bad one: the rest still rebuild the original
    assert rebuild_shards(given_, k, p, [2, 3], digests) == {2: shards[2], 3: shards[3]}


def test_a_wrong_registered_hash_fails_the_rebuild_not_silently() -> None:
    k, p = 2, 2
    shards, digests, _ = _dataset(b"abc" * 50, k, p, 100, 3)
    wrong = list(digests)
    wrong[2] = hashlib.sha256(b"something else").digest()
    with pytest.raises(ShardRebuildError, match="rebuilt shard 2 does not match"):
        rebuild_shards({0: shards[0], 1: shards[1]}, k, p, [2], wrong)


def test_rebuild_refuses_too_few_or_mixed_stripes() -> None:
    k, p = 3, 2
    shards, digests, _ = _dataset(bytes(4000), k, p, 500, 5)
    with pytest.raises(ShardRebuildError, match="need 3 good shards"):
        rebuild_shards({0: shards[0], 4: shards[4]}, k, p, [1], digests)
    with pytest.raises(ShardRebuildError, match="one stripe at a time"):
        rebuild_shards({0: shards[0], 1: shards[1], 5: shards[5]}, k, p, [2], digests)
    with pytest.raises(ShardRebuildError, match="beyond"):
        rebuild_shards({0: shards[0], 1: shards[1], 2: shards[2]}, k, p, [4], digests[:4])


def test_check_shard_against_digest_and_merkle_proof() -> None:
    shards, digests, _ = _dataset(bytes(1000), 2, 1, 300, 9)
    tree = MerkleTree.from_digests(digests)
    for i, shard in enumerate(shards):
        check_shard(i, shard, digests[i], tree.proof(i), tree.root)
    with pytest.raises(ShardIntegrityError, match="shard 1: SHA-256"):
        check_shard(1, shards[1] + b"\0", digests[1])
    with pytest.raises(ShardIntegrityError, match="not proven under Merkle root"):
        check_shard(1, shards[1], digests[1], tree.proof(2), tree.root)
    with pytest.raises(ShardIntegrityError, match="both the proof and the root"):
        check_shard(1, shards[1], digests[1], tree.proof(1), None)
