"""Shamir secret sharing over GF(2^8) with fragment commitments.

Field: GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11B), applied byte-wise
(as HashiCorp Vault's ``shamir`` package). Share x-coordinates are ``1..n``; holder at
position ``j`` holds ``x = j + 1``.

Side channels: there are no lookup tables. Every multiplication is secret x public
(polynomial evaluation at a public x, Lagrange coefficients from public x's), done with
shift-and-xor under masks on all bytes of the secret at once (SWAR on a Python int), so
there are no branches or indexing on secret bytes. Python big integers are not strictly
constant time; this is "constant-time-ish".

Commitments (docs/ARCHITECTURE.md)::

    c = SHA-256(b"shardkey/fragment/v1" | dataset_id | shard_index:u32be | x:u8 | share:32)
    fragments_root = SHA-256(b"shardkey/fragments-root/v1" | c_0 | c_1 | ...)

with one root per fragment holder over its commitments in shard-index order.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from shardkey.crypto.encoding import require_bytes, u8, u32be
from shardkey.crypto.errors import (
    CryptoInputError,
    FragmentCommitmentError,
    ShamirParameterError,
    ShareError,
)

Rng = Callable[[int], bytes]

SHARE_LEN = 32
MAX_SHARES = 255
COMMITMENT_PREFIX = b"shardkey/fragment/v1"
ROOT_PREFIX = b"shardkey/fragments-root/v1"


# --- GF(2^8) scalar arithmetic (branch-free, table-free) ------------------------


def gf_mul(a: int, b: int) -> int:
    """Multiply two field elements (0..255) modulo 0x11B without branches or tables."""
    r = 0
    for _ in range(8):
        r ^= a & -(b & 1)
        a = ((a << 1) ^ (0x11B & -(a >> 7))) & 0xFF
        b >>= 1
    return r


def gf_pow(a: int, e: int) -> int:
    """Raise ``a`` to the public exponent ``e`` by square-and-multiply."""
    result = 1
    base = a
    while e:
        # e is public; the multiply is performed unconditionally and selected by mask.
        prod = gf_mul(result, base)
        mask = -(e & 1)
        result = (prod & mask) | (result & ~mask & 0xFF)
        base = gf_mul(base, base)
        e >>= 1
    return result


def gf_inv(a: int) -> int:
    """Multiplicative inverse as ``a**254`` (maps 0 to 0)."""
    return gf_pow(a, 254)


# --- GF(2^8) on packed byte vectors (SWAR) --------------------------------------


class _Packed:
    """Masks for byte-parallel field arithmetic on ``length``-byte big integers."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.lo = int.from_bytes(b"\x01" * length, "big")
        self.hi_clear = int.from_bytes(b"\xfe" * length, "big")

    def xtime(self, v: int) -> int:
        carry = (v >> 7) & self.lo
        return ((v << 1) & self.hi_clear) ^ (carry * 0x1B)

    def mul_scalar(self, v: int, s: int) -> int:
        """Multiply every byte of ``v`` by the public field element ``s``."""
        r = 0
        for i in range(8):
            r ^= v & -((s >> i) & 1)
            v = self.xtime(v)
        return r


# --- shares ---------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One Shamir share: x-coordinate ``x`` (1..255) and the share bytes ``value``."""

    x: int
    value: bytes

    def __repr__(self) -> str:
        return f"Share(x={self.x}, value=<{len(self.value)} bytes>)"


def _check_x(x: int) -> None:
    if not 1 <= x <= MAX_SHARES:
        raise ShareError(f"share x-coordinate must be in 1..{MAX_SHARES}, got {x}")


def split(secret: bytes, t: int, n: int, rng: Rng) -> list[Share]:
    """Split ``secret`` into ``n`` shares (x = 1..n), any ``t`` of which rebuild it.

    ``rng(k)`` must return ``k`` uniformly random bytes (``os.urandom`` in production).
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) == 0:
        raise ShamirParameterError("secret must be non-empty bytes")
    if not 1 <= t <= n <= MAX_SHARES:
        raise ShamirParameterError(f"need 1 <= t <= n <= {MAX_SHARES}, got t={t}, n={n}")
    length = len(secret)
    packed = _Packed(length)
    want = length * (t - 1)
    rand = rng(want)
    if len(rand) != want:
        raise ShamirParameterError(f"rng returned {len(rand)} bytes, expected {want}")
    # coeffs[0] is the secret, coeffs[1..t-1] random.
    coeffs = [int.from_bytes(secret, "big")] + [
        int.from_bytes(rand[i * length : (i + 1) * length], "big") for i in range(t - 1)
    ]
    shares = []
    for x in range(1, n + 1):
        acc = coeffs[-1]
        for c in reversed(coeffs[:-1]):
            acc = packed.mul_scalar(acc, x) ^ c
        shares.append(Share(x, acc.to_bytes(length, "big")))
    return shares


def lagrange_at_zero(xs: Sequence[int]) -> list[int]:
    """Lagrange basis coefficients L_i(0) for distinct non-zero x-coordinates.

    Remembered per set of x's: they are public, and a fetch combines every shard's key from
    the same holders (each computation is 14 field inversions for three shares, ~90 us).
    """
    return list(_lagrange_at_zero(tuple(xs)))


@functools.lru_cache(maxsize=256)
def _lagrange_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    coeffs = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = gf_mul(num, xj)
                den = gf_mul(den, xj ^ xi)
        coeffs.append(gf_mul(num, gf_inv(den)))
    return tuple(coeffs)


def combine(shares: Iterable[Share], threshold: int | None = None) -> bytes:
    """Rebuild the secret from shares (any ``t`` or more distinct shares of one split).

    Raises :class:`ShareError` for no shares, fewer than ``threshold``, x outside 1..255,
    duplicate x, or inconsistent share lengths. With fewer than ``t`` shares the result
    is a wrong (uniformly distributed) value; pass ``threshold`` to reject that case.
    """
    items = list(shares)
    if not items:
        raise ShareError("no shares to combine")
    if threshold is not None and len(items) < threshold:
        raise ShareError(f"need {threshold} shares to rebuild the key, got {len(items)}")
    seen: set[int] = set()
    length = len(items[0].value)
    if length == 0:
        raise ShareError(f"share x={items[0].x} is empty")
    for s in items:
        _check_x(s.x)
        if s.x in seen:
            raise ShareError(f"duplicate share x-coordinate {s.x}")
        seen.add(s.x)
        if len(s.value) != length:
            raise ShareError(f"share x={s.x} has {len(s.value)} bytes, share x={items[0].x} has {length}")
    packed = _Packed(length)
    xs = [s.x for s in items]
    acc = 0
    for s, coeff in zip(items, lagrange_at_zero(xs), strict=True):
        acc ^= packed.mul_scalar(int.from_bytes(s.value, "big"), coeff)
    return acc.to_bytes(length, "big")


# --- commitments ----------------------------------------------------------------


def fragment_commitment(dataset_id: bytes, shard_index: int, x: int, share: bytes) -> bytes:
    """Commitment to the share with x-coordinate ``x`` of shard ``shard_index``'s key."""
    if not 1 <= x <= MAX_SHARES:
        raise CryptoInputError(f"x must be in 1..{MAX_SHARES}, got {x}")
    return hashlib.sha256(
        COMMITMENT_PREFIX
        + require_bytes(dataset_id, 32, "dataset_id")
        + u32be(shard_index, "shard_index")
        + u8(x, "x")
        + require_bytes(share, SHARE_LEN, f"share (shard {shard_index}, x={x})")
    ).digest()


def fragments_root(commitments: Iterable[bytes]) -> bytes:
    """Root over one holder's commitments, already in shard-index order."""
    h = hashlib.sha256(ROOT_PREFIX)
    for i, c in enumerate(commitments):
        h.update(require_bytes(c, 32, f"commitment #{i}"))
    return h.digest()


Fragments = Mapping[int, bytes] | Iterable[tuple[int, bytes]]


def _ordered(fragments: Fragments) -> list[tuple[int, bytes]]:
    items = list(fragments.items()) if isinstance(fragments, Mapping) else list(fragments)
    items.sort(key=lambda e: e[0])
    for a, b in itertools.pairwise(items):
        if a[0] == b[0]:
            raise CryptoInputError(f"duplicate fragment for shard {a[0]}")
    return items


def holder_fragments_root(dataset_id: bytes, x: int, fragments: Fragments) -> bytes:
    """``fragments_root`` of holder ``x`` from its ``(shard_index, share)`` fragments.

    Fragments are sorted by shard index; duplicates are rejected.
    """
    return fragments_root(fragment_commitment(dataset_id, i, x, share) for i, share in _ordered(fragments))


def verify_fragment(dataset_id: bytes, shard_index: int, share: Share, expected_commitment: bytes) -> None:
    """Raise :class:`FragmentCommitmentError` naming ``x`` and shard if the share is wrong."""
    got = fragment_commitment(dataset_id, shard_index, share.x, share.value)
    if not hmac.compare_digest(got, require_bytes(expected_commitment, 32, "commitment")):
        raise FragmentCommitmentError(
            f"fragment of shard {shard_index} from holder position {share.x - 1} "
            f"(x={share.x}) does not match its commitment",
            x=share.x,
            shard_index=shard_index,
        )


def verify_holder_fragments(
    dataset_id: bytes,
    x: int,
    fragments: Fragments,
    expected_root: bytes,
) -> None:
    """Raise :class:`FragmentCommitmentError` naming holder ``x`` on a root mismatch."""
    got = holder_fragments_root(dataset_id, x, fragments)
    if not hmac.compare_digest(got, require_bytes(expected_root, 32, "fragments_root")):
        raise FragmentCommitmentError(
            f"fragments of holder position {x - 1} (x={x}) do not match its registered "
            "fragments_root; drop all of this holder's fragments",
            x=x,
        )


def bad_holders(
    dataset_id: bytes,
    fragments_by_x: Mapping[int, Fragments],
    roots_by_x: Mapping[int, bytes],
) -> list[int]:
    """Return the sorted x-coordinates whose fragments do not match their root.

    A holder with no registered root is reported as bad too.
    """
    bad = []
    for x, frags in fragments_by_x.items():
        root = roots_by_x.get(x)
        try:
            if root is None:
                raise FragmentCommitmentError(f"no fragments_root for x={x}", x=x)
            verify_holder_fragments(dataset_id, x, frags, root)
        except (FragmentCommitmentError, CryptoInputError):
            bad.append(x)
    return sorted(bad)
