"""Erasure coding of stripes: zfec's systematic Reed-Solomon code over GF(2^8).

A file of ``L`` bytes is cut into ``S = max(1, ceil(L / (k * shard_size)))`` stripes;
the last stripe is zero-padded. Each stripe is ``k`` data blocks of ``shard_size``
bytes. Global shard index ``i``: stripe ``i // m``, position ``i % m`` (``m = k + p``);
positions ``0..k-1`` are data, ``k..m-1`` parity.

:func:`encode_blocks` / :func:`decode_blocks` code any ``k`` equal-length blocks; shard
format v2 (:mod:`shardkey.crypto.stripe`) runs them over the ``k`` data ciphertexts.
:func:`encode_stripe` / :func:`decode_stripe` code a plaintext stripe directly.

The code is zfec's (its coefficients are read from zfec itself). Where ISA-L is installed
(:mod:`shardkey.crypto.isal`), its vector kernels apply those coefficients, 25x faster and
byte for byte the same; without it zfec does the arithmetic.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping, Sequence

import zfec

from shardkey.crypto import isal
from shardkey.crypto.errors import ErasureDecodeError, ErasureParameterError

Block = bytes | bytearray | memoryview

MAX_SHARDS = 256
MAX_SHARD_SIZE = 1 << 30
DEFAULT_SHARD_SIZE = 4 << 20
SHARD_ALIGN = 4096  # a fitted shard size is a whole number of pages


def validate_params(k: int, p: int, shard_size: int) -> None:
    """Raise :class:`ErasureParameterError` unless ``1 <= k``, ``0 <= p``, ``k + p <= 256``
    and ``1 <= shard_size <= 2**30``."""
    if not isinstance(k, int) or k < 1:
        raise ErasureParameterError(f"k (data shards per stripe) must be >= 1, got {k}")
    if not isinstance(p, int) or p < 0:
        raise ErasureParameterError(f"p (parity shards per stripe) must be >= 0, got {p}")
    if k + p > MAX_SHARDS:
        raise ErasureParameterError(f"k + p must be <= {MAX_SHARDS}, got {k} + {p} = {k + p}")
    if not isinstance(shard_size, int) or not 1 <= shard_size <= MAX_SHARD_SIZE:
        raise ErasureParameterError(
            f"shard_size must be between 1 and {MAX_SHARD_SIZE} bytes, got {shard_size}"
        )


def fitted_shard_size(length: int, k: int, shard_size: int) -> int:
    """The shard size a file of ``length`` bytes is stored with when at most ``shard_size``
    is asked for: ``shard_size`` itself, unless the file fits in one stripe of smaller
    shards, then the least whole number of pages (:data:`SHARD_ALIGN`) that holds
    ``ceil(length / k)`` bytes. A 1 MiB file in 3 data shards is 3 x 344 KiB, not
    3 x ``shard_size`` of mostly zero padding (5 x 4 MiB stored for 1 MiB). Sizes below
    one page are kept as asked."""
    validate_params(k, 0, shard_size)
    if not isinstance(length, int) or length < 0:
        raise ErasureParameterError(f"length must be >= 0, got {length}")
    if shard_size <= SHARD_ALIGN:
        return shard_size
    need = -(-length // k)
    return min(shard_size, max(SHARD_ALIGN, -(-need // SHARD_ALIGN) * SHARD_ALIGN))


def stripe_count(length: int, k: int, shard_size: int) -> int:
    """Number of stripes for ``length`` bytes: at least one, even for an empty file."""
    validate_params(k, 0, shard_size)
    if not isinstance(length, int) or length < 0:
        raise ErasureParameterError(f"length must be >= 0, got {length}")
    return max(1, -(-length // (k * shard_size)))


def shard_count(length: int, k: int, p: int, shard_size: int) -> int:
    """Total number of shards (``stripes * (k + p)``) for ``length`` bytes."""
    validate_params(k, p, shard_size)
    return stripe_count(length, k, shard_size) * (k + p)


def shard_location(shard_index: int, k: int, p: int) -> tuple[int, int]:
    """Map a global shard index to ``(stripe, position)``."""
    if shard_index < 0:
        raise ErasureParameterError(f"shard index must be >= 0, got {shard_index}")
    return divmod(shard_index, k + p)


def stripe_bounds(stripe: int, length: int, k: int, shard_size: int) -> tuple[int, int]:
    """Byte range ``[start, end)`` of the file covered by ``stripe`` (end clipped to ``length``)."""
    total = stripe_count(length, k, shard_size)
    if not 0 <= stripe < total:
        raise ErasureParameterError(f"stripe {stripe} out of range (file has {total})")
    size = k * shard_size
    start = stripe * size
    return start, min(length, start + size)


@functools.lru_cache(maxsize=64)
def parity_rows(k: int, p: int) -> tuple[tuple[int, ...], ...]:
    """zfec's parity coefficients: parity position ``k + r`` is ``XOR_i rows[r][i] * data_i``.

    Read from zfec, not derived: data block ``i`` of ``k`` bytes is the unit vector with a 1
    at byte ``i``, so byte ``i`` of parity ``r`` is the coefficient ``rows[r][i]``.
    """
    validate_params(k, p, 1)
    units = tuple(bytes(int(i == j) for j in range(k)) for i in range(k))
    parity = zfec.Encoder(k, k + p).encode(units, tuple(range(k, k + p))) if p else []
    return tuple(tuple(block) for block in parity)


def _known_answer() -> tuple[isal.Matrix, list[bytes], list[bytes]]:
    inputs = [bytes((i * 37 + j * 11 + 1) % 256 for j in range(64)) for i in range(3)]
    expected = zfec.Encoder(3, 5).encode(inputs, (3, 4))
    return parity_rows(3, 2), inputs, [bytes(b) for b in expected]


@functools.lru_cache(maxsize=1)
def accelerated() -> isal.Kernels | None:
    """ISA-L's kernels when installed and checked against zfec, else None (zfec is used)."""
    return isal.load(_known_answer())


@functools.lru_cache(maxsize=64)
def _parity_tables(kernels: isal.Kernels, k: int, p: int) -> ctypes.Array[ctypes.c_ubyte]:
    return kernels.tables(parity_rows(k, p), k)


def _equal_lengths(blocks: Sequence[Block], what: str, error: type[Exception]) -> int:
    sizes = {len(memoryview(b).cast("B")) for b in blocks}
    if len(sizes) != 1:
        raise error(f"{what} differ in length: {sorted(sizes)} bytes")
    return sizes.pop()


def encode_blocks(blocks: Sequence[Block], k: int, p: int,
                  out: Sequence[bytearray | memoryview] | None = None) -> list[Block]:
    """The ``p`` parity blocks of ``k`` equal-length data blocks (positions ``k..k+p-1``),
    written into ``out`` when given (``p`` writable buffers of the blocks' length, apart
    from the inputs: a caller reusing them saves fresh pages) and returned."""
    validate_params(k, p, 1)
    if len(blocks) != k:
        raise ErasureParameterError(f"need exactly k = {k} data blocks, got {len(blocks)}")
    length = _equal_lengths(blocks, "data blocks", ErasureParameterError)
    if p == 0:
        return []
    kernels = accelerated()
    if kernels is not None and length:
        return list(kernels.apply(_parity_tables(kernels, k, p), k, p, blocks, length, out))
    parity = zfec.Encoder(k, k + p).encode(tuple(blocks), tuple(range(k, k + p)))
    if out is None:
        return [b if isinstance(b, bytes) else bytes(b) for b in parity]
    if len(out) != p or any(len(memoryview(b).cast("B")) != length for b in out):
        raise ErasureParameterError(f"need {p} outputs of exactly {length} bytes")
    for target, block in zip(out, parity, strict=True):
        memoryview(target).cast("B")[:] = block
    return list(out)


def _generator_row(position: int, k: int, p: int) -> Sequence[int]:
    return [int(i == position) for i in range(k)] if position < k else parity_rows(k, p)[position - k]


def _recover(kernels: isal.Kernels, blocks: Mapping[int, Block], order: list[int], k: int, p: int,
             length: int, scratch: Sequence[bytearray | memoryview]) -> list[Block]:
    """The ``k`` data blocks from the ``k`` blocks at positions ``order`` (``order[j] == j``
    for each data block present, returned as given): the missing ones are rows of the
    inverted generator, written into ``scratch`` buffers when there are enough of them."""
    inverse = kernels.invert([_generator_row(pos, k, p) for pos in order])
    missing = [j for j in range(k) if order[j] != j]
    outputs = ([memoryview(b).cast("B")[:length] for b in scratch[:len(missing)]]
               if len(scratch) >= len(missing) and all(len(b) >= length for b in scratch) else None)
    rebuilt = kernels.apply(kernels.tables([inverse[j] for j in missing], k), k, len(missing),
                            [blocks[pos] for pos in order], length, outputs)
    out: list[Block] = [blocks[j] if order[j] == j else b"" for j in range(k)]
    for j, block in zip(missing, rebuilt, strict=True):
        out[j] = block
    return out


def decode_blocks(blocks: Mapping[int, Block], k: int, p: int, *,
                  where: str = "", scratch: Sequence[bytearray | memoryview] = ()) -> list[Block]:
    """The ``k`` data blocks from any ``k`` equal-length blocks keyed by position.

    ``where`` prefixes error messages. ``scratch``: buffers (at least a block long, none an
    input) the rebuilt blocks may be written into instead of new ones; a data block given
    may be returned as it is. Raises :class:`ErasureDecodeError` for too few blocks, a
    position outside ``0..k+p-1`` or blocks of different lengths.
    """
    validate_params(k, p, 1)
    m = k + p
    for pos in blocks:
        if not 0 <= pos < m:
            raise ErasureDecodeError(f"{where}shard position {pos} outside 0..{m - 1}")
    if len(blocks) < k:
        raise ErasureDecodeError(
            f"{where}need {k} of {m} shards to rebuild, have {len(blocks)} (positions {sorted(blocks)})"
        )
    length = _equal_lengths(list(blocks.values()), f"{where}shards", ErasureDecodeError)
    if all(j in blocks for j in range(k)):
        return [bytes(blocks[j]) for j in range(k)]
    # Prefer data shards, then parity; put each primary block at its own index.
    chosen = [j for j in range(k) if j in blocks]
    chosen += [j for j in sorted(blocks) if j >= k][: k - len(chosen)]
    parity = iter(j for j in chosen if j >= k)
    order = [j if j in blocks else next(parity) for j in range(k)]
    kernels = accelerated()
    if kernels is not None and length:
        return _recover(kernels, blocks, order, k, p, length, scratch)
    out = zfec.Decoder(k, m).decode(tuple(bytes(blocks[j]) for j in order), tuple(order))
    return [bytes(b) for b in out]


def encode_stripe(data: bytes, k: int, p: int, shard_size: int) -> list[bytes]:
    """Encode up to ``k * shard_size`` bytes (zero-padded) into ``k + p`` shards."""
    validate_params(k, p, shard_size)
    size = k * shard_size
    if len(data) > size:
        raise ErasureParameterError(f"stripe data is {len(data)} bytes, more than k * shard_size = {size}")
    padded = data if len(data) == size and isinstance(data, bytes) else bytes(data) + bytes(size - len(data))
    view = memoryview(padded)  # zfec reads the blocks in place; only its outputs are new
    blocks = [view[j * shard_size : (j + 1) * shard_size] for j in range(k)]
    encoded = [*blocks, *encode_blocks(blocks, k, p)]
    return [b if isinstance(b, bytes) else bytes(b) for b in encoded]


def decode_stripe(
    shards: Mapping[int, bytes], k: int, p: int, shard_size: int, *, stripe: int | None = None
) -> bytes:
    """Rebuild a stripe (``k * shard_size`` bytes) from any ``k`` shards by position.

    ``stripe`` only labels error messages. Raises :class:`ErasureDecodeError` for too
    few shards, a bad position or a shard of the wrong size.
    """
    validate_params(k, p, shard_size)
    where = f"stripe {stripe}: " if stripe is not None else ""
    for pos, shard in shards.items():
        if 0 <= pos < k + p and len(shard) != shard_size:
            raise ErasureDecodeError(
                f"{where}shard at position {pos} has {len(shard)} bytes, expected {shard_size}"
            )
    return b"".join(decode_blocks(shards, k, p, where=where))


def trim_stripe(stripe_data: bytes, stripe: int, length: int, k: int, shard_size: int) -> bytes:
    """Cut the zero padding off a decoded stripe, given the file length ``length``."""
    start, end = stripe_bounds(stripe, length, k, shard_size)
    if len(stripe_data) != k * shard_size:
        raise ErasureDecodeError(
            f"stripe {stripe}: decoded {len(stripe_data)} bytes, expected {k * shard_size}"
        )
    return bytes(stripe_data[: end - start])
