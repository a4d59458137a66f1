"""The in-place forms of the shard format v2 path (sealed straight into a caller's buffer,
decrypted straight into the output) produce exactly what the copying forms and the
streaming encryptor do."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from shardkey.crypto.errors import CryptoInputError, ShardDecryptionError
from shardkey.crypto.stream import HEADER_LEN, ShardEncryptor, decrypt_shard_into
from shardkey.crypto.stripe import (
    CHUNK_SIZE,
    open_stripe,
    open_stripe_into,
    seal_stripe,
    seal_stripe_into,
    stored_shard_length,
)

DS = bytes(range(32))
K, P, SIZE = 3, 2, 3 * CHUNK_SIZE + 100  # several STREAM chunks and a short last one


def _rng(seed: int):  # deterministic nonces, so two seals can be compared byte for byte
    source = random.Random(seed)
    return lambda n: bytes(source.getrandbits(8) for _ in range(n))


def test_sealing_in_place_matches_the_copying_form_and_the_stream_encryptor() -> None:
    keys = [os.urandom(32) for _ in range(K)]
    data = os.urandom(K * SIZE - 5000)  # a last stripe: zero-padded
    copied = seal_stripe(keys, DS, 4, data, K, P, SIZE, _rng(1))
    buffer = bytearray((K + P) * stored_shard_length(SIZE))
    in_place = seal_stripe_into(keys, DS, 4, memoryview(data), K, P, SIZE, _rng(1), buffer)
    assert [bytes(s) for s, _ in in_place] == [s for s, _ in copied]
    digests = [hashlib.sha256(s).digest() for s, _ in copied]
    assert [d for _, d in in_place] == [d for _, d in copied] == digests
    assert all(shard.obj is buffer for shard, _ in in_place)  # every shard was written in place
    padded = data + bytes(K * SIZE - len(data))
    rng = _rng(1)
    for j in range(K):
        enc = ShardEncryptor(keys[j], DS, 4 * (K + P) + j, rng, CHUNK_SIZE)
        assert enc.update(padded[j * SIZE:(j + 1) * SIZE]) + enc.finalize() == copied[j][0]


@pytest.mark.parametrize("present", [(0, 1, 2), (0, 3, 4), (2, 3, 4), (1, 2, 3, 4)])
def test_opening_in_place_from_any_k_shards(present: tuple[int, ...]) -> None:
    keys = [os.urandom(32) for _ in range(K)]
    data = os.urandom(K * SIZE)
    shards = seal_stripe_into(keys, DS, 0, data, K, P, SIZE, os.urandom)
    out = bytearray(K * SIZE)
    given = {j: shards[j][0] for j in present}
    assert open_stripe_into(dict(enumerate(keys)), DS, 0, given, K, P, out) == K * SIZE
    assert out == data
    assert open_stripe(dict(enumerate(keys)), DS, 0, {j: bytes(s) for j, s in given.items()}, K, P) == data


def test_decrypting_in_place_refuses_a_short_buffer_and_a_tampered_chunk() -> None:
    keys = [os.urandom(32) for _ in range(K)]
    shard = bytes(seal_stripe_into(keys, DS, 0, os.urandom(K * SIZE), K, P, SIZE, os.urandom)[0][0])
    with pytest.raises(CryptoInputError, match="output buffer"):
        decrypt_shard_into(keys[0], DS, 0, shard, bytearray(SIZE - 1))
    bad = bytearray(shard)
    bad[HEADER_LEN + 10] ^= 1
    with pytest.raises(ShardDecryptionError, match="chunk 0 failed authentication"):
        decrypt_shard_into(keys[0], DS, 0, bad, bytearray(SIZE))
    with pytest.raises(ShardDecryptionError, match="truncated"):
        decrypt_shard_into(keys[0], DS, 0, shard[:-20], bytearray(SIZE))


def test_a_buffer_without_room_for_the_parity_is_refused() -> None:
    keys = [os.urandom(32) for _ in range(K)]
    short = bytearray(K * stored_shard_length(SIZE))  # the data shards fit, the parity would not
    with pytest.raises(CryptoInputError, match=f"holds {len(short)} bytes, 5 shards need"):
        seal_stripe_into(keys, DS, 0, os.urandom(K * SIZE), K, P, SIZE, os.urandom, short)
