"""Shard format v2: encrypt, then encode (docs/DESIGN.md "Shard format v2").

A stripe's plaintext (``k * shard_size`` bytes, the last stripe zero-padded) is cut into
``k`` data blocks; data block ``j`` is sealed with STREAM (:mod:`shardkey.crypto.stream`,
AAD prefix ``shardkey/shard/v2``, chunk size :data:`CHUNK_SIZE`) under its own key as
shard ``stripe * m + j``. The ``p`` parity shards are the erasure code of those ``k``
ciphertexts, so every stored shard is :func:`stored_shard_length` bytes, and any ``k``
shards give back the ``k`` ciphertexts without a key (:mod:`shardkey.crypto.rebuild`).
Only data shards have keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

from shardkey.crypto.erasure import decode_blocks, encode_blocks, shard_location, validate_params
from shardkey.crypto.errors import CryptoInputError
from shardkey.crypto.stream import DEFAULT_CHUNK_SIZE, ciphertext_length, decrypt_shard_into, seal_shard_into

Rng = Callable[[int], bytes]

FORMAT_VERSION = 2
CHUNK_SIZE = DEFAULT_CHUNK_SIZE  # fixed by the format: every shard of a size has one length


def stored_shard_length(shard_size: int) -> int:
    """Bytes of every stored shard (data ciphertext or parity) of a ``shard_size`` dataset."""
    validate_params(1, 0, shard_size)
    return ciphertext_length(shard_size, CHUNK_SIZE)


def is_data_shard(index: int, k: int, p: int) -> bool:
    """Whether global shard ``index`` is a data shard (has a key) rather than parity."""
    return shard_location(index, k, p)[1] < k


def data_shard_indices(shard_count: int, k: int, p: int) -> list[int]:
    """The global indices of the data shards, the only shards with keys, in order."""
    validate_params(k, p, 1)
    if shard_count < 0 or shard_count % (k + p):
        raise CryptoInputError(f"shard_count {shard_count} is not a whole number of {k + p}-shard stripes")
    return [i for i in range(shard_count) if i % (k + p) < k]


def seal_stripe(keys: Sequence[bytes], dataset_id: bytes, stripe: int, data: bytes,
                k: int, p: int, shard_size: int, rng: Rng) -> list[tuple[bytes, bytes]]:
    """Encrypt a stripe's ``k`` data blocks (``keys[j]`` for position ``j``) and compute the
    ``p`` parity shards over the ciphertexts; return ``(shard, sha256(shard))`` by position."""
    return [(bytes(shard), digest)
            for shard, digest in seal_stripe_into(keys, dataset_id, stripe, data, k, p, shard_size, rng)]


def seal_stripe_into(keys: Sequence[bytes], dataset_id: bytes, stripe: int,
                     data: bytes | bytearray | memoryview, k: int, p: int, shard_size: int, rng: Rng,
                     out: bytearray | None = None) -> list[tuple[memoryview, bytes]]:
    """:func:`seal_stripe` written straight into ``out``: the ``k`` data ciphertexts, each
    hashed as it is sealed, then the ``p`` parity shards (``out`` holds at least
    ``(k + p) * stored_shard_length(shard_size)`` bytes; a new buffer if None). The shards
    returned are views of ``out``, by position."""
    validate_params(k, p, shard_size)
    if len(keys) != k:
        raise CryptoInputError(f"stripe {stripe}: need {k} data shard keys, got {len(keys)}")
    size = k * shard_size
    plain = memoryview(data).cast("B")
    if len(plain) > size:
        raise CryptoInputError(f"stripe {stripe}: {len(plain)} bytes, more than k * shard_size = {size}")
    if len(plain) < size:  # the last stripe: zero-padded
        plain = memoryview(bytes(plain) + bytes(size - len(plain)))
    stored = stored_shard_length(shard_size)
    m = k + p
    view = memoryview(out if out is not None else bytearray(m * stored))
    if len(view) < m * stored:
        raise CryptoInputError(f"stripe {stripe}: the output buffer holds {len(view)} bytes, "
                               f"{m} shards need {m * stored}")
    shards = [view[j * stored:(j + 1) * stored] for j in range(m)]
    sealed: list[tuple[memoryview, bytes]] = []
    for j in range(k):
        block = plain[j * shard_size:(j + 1) * shard_size]
        digest = seal_shard_into(keys[j], dataset_id, stripe * m + j, block, rng, shards[j], CHUNK_SIZE)
        sealed.append((shards[j], digest))
    encode_blocks(shards[:k], k, p, shards[k:])
    return sealed + [(shard, hashlib.sha256(shard).digest()) for shard in shards[k:]]


def open_stripe(keys: Mapping[int, bytes], dataset_id: bytes, stripe: int,
                shards: Mapping[int, bytes], k: int, p: int) -> bytes:
    """The stripe's padded plaintext from any ``k`` verified shards (by position) and the
    keys of its data positions (``keys[j]`` for position ``j``; only ``0..k-1`` are used).

    Raises :class:`~shardkey.crypto.errors.ErasureDecodeError` for too few or unequal
    shards and :class:`~shardkey.crypto.errors.ShardDecryptionError` naming the shard
    whose ciphertext does not authenticate.
    """
    out = bytearray(k * max(0, max((len(s) for s in shards.values()), default=0)))
    return bytes(out[:open_stripe_into(keys, dataset_id, stripe, shards, k, p, out)])


def open_stripe_into(keys: Mapping[int, bytes], dataset_id: bytes, stripe: int,
                     shards: Mapping[int, bytes | bytearray | memoryview], k: int, p: int,
                     out: bytearray | memoryview, scratch: Sequence[bytearray] = ()) -> int:
    """:func:`open_stripe` decrypting straight into ``out`` (room for ``k`` shards'
    plaintext; a shard's ciphertext length per shard always suffices); return the bytes
    written. Only a stripe missing a data shard is decoded, its missing ciphertexts into
    ``scratch`` (buffers of at least a shard each, if given); else no byte is copied."""
    if all(j in shards for j in range(k)) and len({len(s) for s in shards.values()}) == 1 \
            and all(0 <= j < k + p for j in shards):
        ciphertexts: Sequence[bytes | bytearray | memoryview] = [shards[j] for j in range(k)]
    else:
        ciphertexts = decode_blocks(shards, k, p, where=f"stripe {stripe}: ", scratch=scratch)
    m = k + p
    target = memoryview(out).cast("B")
    at = 0
    for j in range(k):
        at += decrypt_shard_into(keys[j], dataset_id, stripe * m + j, ciphertexts[j], target[at:])
    return at
