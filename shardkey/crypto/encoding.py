"""Small fixed-width packing helpers shared by the crypto modules."""

from __future__ import annotations

from shardkey.crypto.errors import CryptoInputError

U32_MAX = 0xFFFFFFFF
U64_MAX = (1 << 64) - 1
U256_MAX = (1 << 256) - 1


def u8(value: int, name: str = "value") -> bytes:
    """Encode ``value`` as one byte, rejecting out-of-range values."""
    if not 0 <= value <= 0xFF:
        raise CryptoInputError(f"{name} must fit in uint8, got {value}")
    return bytes((value,))


def u32be(value: int, name: str = "value") -> bytes:
    """Encode ``value`` as a 4-byte big-endian unsigned integer."""
    if not 0 <= value <= U32_MAX:
        raise CryptoInputError(f"{name} must fit in uint32, got {value}")
    return value.to_bytes(4, "big")


def u64be(value: int, name: str = "value") -> bytes:
    """Encode ``value`` as an 8-byte big-endian unsigned integer."""
    if not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise CryptoInputError(f"{name} must fit in uint64, got {value!r}")
    return value.to_bytes(8, "big")


def u256be(value: int, name: str = "value") -> bytes:
    """Encode ``value`` as a 32-byte big-endian unsigned integer (ABI ``uint256``)."""
    if not 0 <= value <= U256_MAX:
        raise CryptoInputError(f"{name} must fit in uint256, got {value}")
    return value.to_bytes(32, "big")


def require_bytes(
    value: object,
    length: int,
    name: str,
    error: type[CryptoInputError] = CryptoInputError,
) -> bytes:
    """Return ``value`` as ``bytes`` if it is a bytes-like of exactly ``length`` bytes.

    Otherwise raise ``error`` (a :class:`CryptoInputError` subclass) naming ``name``.
    """
    if not isinstance(value, bytes | bytearray | memoryview):
        raise error(f"{name} must be bytes, got {type(value).__name__}")
    data = bytes(value)
    if len(data) != length:
        raise error(f"{name} must be {length} bytes, got {len(data)}")
    return data
