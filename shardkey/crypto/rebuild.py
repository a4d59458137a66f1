"""Keyless rebuild of lost shards (shard format v2) and shard checks against their leaves.

Every stored shard, data ciphertext or parity, has its SHA-256 in the registration and
its leaf in the dataset's Merkle tree (:mod:`shardkey.crypto.merkle`). Any ``k`` shards of
a stripe give back its ``k`` data ciphertexts (no key: they stay ciphertext), and from
those every parity shard, byte for byte. :func:`rebuild_shards` checks every input shard
against its digest before use and every output against its digest before returning it,
so a corrupted input is named, never silently coded into a wrong rebuild.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

from shardkey.crypto.erasure import decode_blocks, encode_blocks, shard_location, validate_params
from shardkey.crypto.errors import ShardIntegrityError, ShardRebuildError
from shardkey.crypto.merkle import verify_shard


def check_shard(index: int, data: bytes, sha256_digest: bytes,
                proof: Sequence[bytes] | None = None, root: bytes | None = None) -> None:
    """Raise :class:`ShardIntegrityError` unless ``data`` hashes to ``sha256_digest`` and,
    when ``proof`` and ``root`` are given, that digest is leaf ``index`` under ``root``."""
    got = hashlib.sha256(data).digest()
    if not hmac.compare_digest(got, sha256_digest):
        raise ShardIntegrityError(f"shard {index}: SHA-256 0x{got.hex()} is not its registered "
                                  f"0x{bytes(sha256_digest).hex()}", shard_index=index)
    if (proof is None) != (root is None):
        raise ShardIntegrityError(f"shard {index}: a Merkle check needs both the proof and the root",
                                  shard_index=index)
    if proof is not None and root is not None and not verify_shard(index, sha256_digest, proof, root):
        raise ShardIntegrityError(f"shard {index}: its digest is not proven under Merkle root "
                                  f"0x{root.hex()}", shard_index=index)


def rebuild_shards(shards: Mapping[int, bytes], k: int, p: int, wanted: Iterable[int],
                   shard_hashes: Sequence[bytes]) -> dict[int, bytes]:
    """Rebuild the shards ``wanted`` (global indices) from ``k`` or more shards of the same
    stripe (global index -> bytes); ``shard_hashes[i]`` is shard ``i``'s registered SHA-256.

    Every input is checked against its digest first (:class:`ShardIntegrityError` names a
    bad one: drop it and pass another); every output is checked before it is returned
    (:class:`ShardRebuildError`). Too few shards, or shards of several stripes, raise
    :class:`ShardRebuildError`.
    """
    validate_params(k, p, 1)
    wanted = sorted(set(wanted))
    stripes = {shard_location(i, k, p)[0] for i in [*shards, *wanted]}
    if len(stripes) > 1:
        raise ShardRebuildError(f"shards of stripes {sorted(stripes)} given; rebuild one stripe at a time")
    if not stripes:
        return {}
    stripe = stripes.pop()
    for index in [*shards, *wanted]:
        if index >= len(shard_hashes):
            raise ShardRebuildError(f"shard {index} is beyond the dataset's {len(shard_hashes)} shards")
    for index, data in shards.items():
        check_shard(index, data, shard_hashes[index])
    m = k + p
    base = stripe * m
    if len(shards) < k:
        raise ShardRebuildError(f"stripe {stripe}: need {k} good shards to rebuild, have {len(shards)} "
                                f"(shards {sorted(shards)})")
    data_blocks = decode_blocks({i - base: d for i, d in shards.items()}, k, p, where=f"stripe {stripe}: ")
    parity_needed = any(i - base >= k for i in wanted)
    full = data_blocks + (encode_blocks(data_blocks, k, p) if parity_needed else [])
    out: dict[int, bytes] = {}
    for index in wanted:
        block = full[index - base]
        if not hmac.compare_digest(hashlib.sha256(block).digest(), shard_hashes[index]):
            raise ShardRebuildError(f"stripe {stripe}: rebuilt shard {index} does not match its "
                                    "registered hash (the registration's hashes do not fit together)")
        out[index] = bytes(block)  # bytes(b) is b itself for bytes
    return out
