"""Fragment bundles: all of one holder's key fragments for one dataset.

Plaintext::

    version:u8 = 1 | dataset_id:32 | x:u8 | count:u32be | count * (shard_index:u32be | share:32)

with entries strictly increasing by shard index. Wrapped form (stored at the holder)::

    version:u8 = 1 | nonce:12 | AESGCM(w).encrypt(nonce, plaintext, aad)
    aad = b"shardkey/bundle/v1" | dataset_id:32 | x:u8
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shardkey.crypto.encoding import require_bytes, u8, u32be
from shardkey.crypto.errors import (
    BundleCountError,
    BundleMismatchError,
    BundleOrderError,
    BundleTruncatedError,
    BundleUnwrapError,
    BundleVersionError,
    CryptoInputError,
)
from shardkey.crypto.shamir import SHARE_LEN, Share

Rng = Callable[[int], bytes]

VERSION = 1
WRAPPED_VERSION = 1
HEADER_LEN = 1 + 32 + 1 + 4  # 38
ENTRY_LEN = 4 + SHARE_LEN  # 36
NONCE_LEN = 12
TAG_LEN = 16
WRAP_KEY_LEN = 32
AAD_PREFIX = b"shardkey/bundle/v1"


@dataclass(frozen=True)
class FragmentBundle:
    """Holder ``x``'s fragments for ``dataset_id``: ``shard_index -> share`` in order."""

    dataset_id: bytes
    x: int
    entries: tuple[tuple[int, bytes], ...]

    def __repr__(self) -> str:
        return (
            f"FragmentBundle(dataset_id=0x{self.dataset_id.hex()}, x={self.x}, "
            f"entries=<{len(self.entries)} fragments>)"
        )

    @classmethod
    def build(
        cls,
        dataset_id: bytes,
        x: int,
        fragments: Mapping[int, bytes] | Iterable[tuple[int, bytes]],
    ) -> FragmentBundle:
        """Validate and sort fragments into a bundle (duplicate shard index rejected)."""
        items = list(fragments.items()) if isinstance(fragments, Mapping) else list(fragments)
        items.sort(key=lambda e: e[0])
        bundle = cls(bytes(dataset_id), x, tuple((i, bytes(s)) for i, s in items))
        bundle.validate()
        return bundle

    def validate(self) -> None:
        """Check field sizes, ``x`` range and strictly increasing shard indices."""
        require_bytes(self.dataset_id, 32, "dataset_id")
        if not 1 <= self.x <= 255:
            raise CryptoInputError(f"bundle x must be in 1..255, got {self.x}")
        prev = -1
        for i, share in self.entries:
            u32be(i, "shard_index")
            require_bytes(share, SHARE_LEN, f"share for shard {i}")
            if i <= prev:
                raise BundleOrderError(
                    f"bundle entries not strictly increasing: shard {i} after shard {prev}"
                )
            prev = i

    def shares(self) -> dict[int, Share]:
        """Map ``shard_index -> Share(x, value)``."""
        return {i: Share(self.x, s) for i, s in self.entries}


def pack_bundle(bundle: FragmentBundle) -> bytes:
    """Serialize a bundle to its plaintext wire form."""
    bundle.validate()
    out = bytearray()
    out += u8(VERSION) + bundle.dataset_id + u8(bundle.x, "x") + u32be(len(bundle.entries))
    for i, share in bundle.entries:
        out += u32be(i) + share
    return bytes(out)


def unpack_bundle(data: bytes, *, dataset_id: bytes | None = None, x: int | None = None) -> FragmentBundle:
    """Parse a plaintext bundle; optionally require a given ``dataset_id`` and ``x``."""
    data = bytes(data)
    if len(data) < 1:
        raise BundleTruncatedError("bundle is empty")
    if data[0] != VERSION:
        raise BundleVersionError(f"unknown bundle version {data[0]} (expected {VERSION})")
    if len(data) < HEADER_LEN:
        raise BundleTruncatedError(f"bundle truncated: {len(data)} bytes, header needs {HEADER_LEN}")
    ds, bx = data[1:33], data[33]
    count = int.from_bytes(data[34:38], "big")
    body = len(data) - HEADER_LEN
    if body != count * ENTRY_LEN:
        raise BundleCountError(
            f"bundle declares {count} entries ({count * ENTRY_LEN} bytes) but carries {body} bytes of entries"
        )
    if bx == 0:
        raise BundleMismatchError("bundle x-coordinate is 0 (must be 1..255)")
    _expect(ds, bx, dataset_id, x)
    entries = []
    prev = -1
    for k in range(count):
        off = HEADER_LEN + k * ENTRY_LEN
        i = int.from_bytes(data[off : off + 4], "big")
        if i <= prev:
            raise BundleOrderError(
                f"bundle entry {k}: shard {i} does not follow shard {prev} (must increase)"
            )
        prev = i
        entries.append((i, data[off + 4 : off + ENTRY_LEN]))
    return FragmentBundle(ds, bx, tuple(entries))


def _expect(ds: bytes, bx: int, dataset_id: bytes | None, x: int | None) -> None:
    if dataset_id is not None and ds != dataset_id:
        raise BundleMismatchError(f"bundle is for dataset 0x{ds.hex()}, expected 0x{bytes(dataset_id).hex()}")
    if x is not None and bx != x:
        raise BundleMismatchError(f"bundle is for x={bx}, expected x={x}")


def bundle_aad(dataset_id: bytes, x: int) -> bytes:
    """Associated data binding a wrapped bundle to its dataset and x-coordinate."""
    return AAD_PREFIX + require_bytes(dataset_id, 32, "dataset_id") + u8(x, "x")


def wrap_bundle(wrap_key: bytes, bundle: FragmentBundle, rng: Rng) -> bytes:
    """Encrypt a bundle under the holder's 32-byte wrap key ``w_j``."""
    key = require_bytes(wrap_key, WRAP_KEY_LEN, "wrap key")
    nonce = require_bytes(rng(NONCE_LEN), NONCE_LEN, "rng output")
    plaintext = pack_bundle(bundle)
    ct = AESGCM(key).encrypt(nonce, plaintext, bundle_aad(bundle.dataset_id, bundle.x))
    return u8(WRAPPED_VERSION) + nonce + ct


def unwrap_bundle(wrap_key: bytes, wrapped: bytes, dataset_id: bytes, x: int) -> FragmentBundle:
    """Decrypt a wrapped bundle expected to belong to ``dataset_id`` / ``x``.

    A wrong key, dataset id or x, or any tampering, raises :class:`BundleUnwrapError`.
    """
    key = require_bytes(wrap_key, WRAP_KEY_LEN, "wrap key")
    wrapped = bytes(wrapped)
    if len(wrapped) < 1:
        raise BundleTruncatedError("wrapped bundle is empty")
    if wrapped[0] != WRAPPED_VERSION:
        raise BundleVersionError(f"unknown wrapped bundle version {wrapped[0]} (expected {WRAPPED_VERSION})")
    if len(wrapped) < 1 + NONCE_LEN + TAG_LEN:
        raise BundleTruncatedError(
            f"wrapped bundle truncated: {len(wrapped)} bytes, need at least {1 + NONCE_LEN + TAG_LEN}"
        )
    nonce = wrapped[1 : 1 + NONCE_LEN]
    try:
        plaintext = AESGCM(key).decrypt(nonce, wrapped[1 + NONCE_LEN :], bundle_aad(dataset_id, x))
    except InvalidTag:
        raise BundleUnwrapError(
            f"wrapped bundle for dataset 0x{bytes(dataset_id).hex()} x={x} failed "
            "authentication (wrong wrap key, wrong dataset or x, or tampered)"
        ) from None
    return unpack_bundle(plaintext, dataset_id=dataset_id, x=x)
