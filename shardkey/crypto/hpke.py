"""HPKE (RFC 9180, base mode) sealing via ``cryptography.hazmat.primitives.hpke``.

A sealed blob is ``suite_id:u8 | enc | ciphertext`` where suite 1 is
DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM and suite 2 is
ML-KEM-768+X25519 / HKDF-SHA256 / AES-256-GCM. New keys are suite 2 unless asked
otherwise (:data:`DEFAULT_SUITE`); sealing follows the recipient key's suite.

Key encodings (ShardKey's own, raw bytes):

- public key: suite 1: X25519 raw (32 bytes); suite 2: ML-KEM-768 encapsulation key
  (1184 bytes) followed by X25519 raw (32 bytes), 1216 bytes in all;
- private key (:meth:`HpkePrivateKey.to_bytes`, for keystores): ``suite_id:u8 |``
  X25519 raw (32), or ML-KEM-768 seed (64) followed by X25519 raw (32).

Key generation draws from the ``rng`` passed in. The HPKE ephemeral key of each
:func:`seal` is generated inside ``cryptography`` from the OS RNG (its API offers no
way to inject it); this is the only randomness not coming from a caller's ``rng``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from shardkey.crypto.encoding import require_bytes, u8, u64be, u256be
from shardkey.crypto.errors import HpkeDecryptionError, HpkeKeyError

Rng = Callable[[int], bytes]

X25519_LEN = 32
MLKEM768_PUBLIC_LEN = 1184
MLKEM768_SEED_LEN = 64
INFO_PREFIX = b"shardkey/"


class HpkeSuiteId(enum.IntEnum):
    """Suite identifiers used as the first byte of a sealed blob."""

    X25519 = 1
    MLKEM768_X25519 = 2


# Hybrid post-quantum by default: every sealed wrap key, token and delivery is published on
# a permanent public ledger, so a key broken later (X25519 by a quantum computer) would open
# the whole history. X25519 alone is an explicit choice (``--hpke-suite x25519``).
DEFAULT_SUITE = HpkeSuiteId.MLKEM768_X25519
SUITE_NAMES = {"mlkem768-x25519": HpkeSuiteId.MLKEM768_X25519, "x25519": HpkeSuiteId.X25519}


def parse_suite(name: str) -> HpkeSuiteId:
    """A suite from its option name (``mlkem768-x25519`` or ``x25519``), naming the choices."""
    try:
        return SUITE_NAMES[name.strip().lower()]
    except KeyError:
        raise HpkeKeyError(f"unknown HPKE suite {name!r}; expected one of {', '.join(SUITE_NAMES)}") from None


_SUITES = {
    HpkeSuiteId.X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    HpkeSuiteId.MLKEM768_X25519: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}
_PUBLIC_LEN = {
    HpkeSuiteId.X25519: X25519_LEN,
    HpkeSuiteId.MLKEM768_X25519: MLKEM768_PUBLIC_LEN + X25519_LEN,
}
_PRIVATE_LEN = {
    HpkeSuiteId.X25519: X25519_LEN,
    HpkeSuiteId.MLKEM768_X25519: MLKEM768_SEED_LEN + X25519_LEN,
}

_PublicKey = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
_PrivateKey = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


def _suite_id(value: int) -> HpkeSuiteId:
    try:
        return HpkeSuiteId(value)
    except ValueError:
        raise HpkeKeyError(f"unknown HPKE suite id {value}") from None


def suite_for_public_key(public_key: bytes) -> HpkeSuiteId:
    """Infer the suite from a raw public key's length (32 or 1216 bytes)."""
    for sid, length in _PUBLIC_LEN.items():
        if len(public_key) == length:
            return sid
    raise HpkeKeyError(f"HPKE public key has {len(public_key)} bytes; expected 32 or 1216")


@functools.lru_cache(maxsize=256)
def _load_public(public_key: bytes, suite: HpkeSuiteId) -> _PublicKey:
    # Cached: a store seals five fragments per data shard to the same few holder keys, and
    # parsing an ML-KEM-768 key is most of the cost of a seal. Public keys only.
    pk = require_bytes(public_key, _PUBLIC_LEN[suite], f"HPKE public key ({suite.name})")
    try:
        xpub = x25519.X25519PublicKey.from_public_bytes(pk[-X25519_LEN:])
        if suite is HpkeSuiteId.X25519:
            return xpub
        mpub = mlkem.MLKEM768PublicKey.from_public_bytes(pk[:MLKEM768_PUBLIC_LEN])
        return hpke.MLKEM768X25519PublicKey(mpub, xpub)
    except ValueError:
        raise HpkeKeyError(f"HPKE public key is not a valid {suite.name} key") from None


class HpkePrivateKey:
    """An HPKE private key: opens sealed blobs, exports its public key and itself."""

    def __init__(self, suite: HpkeSuiteId, raw: bytes) -> None:
        """Load from raw private bytes for ``suite`` (see module docstring)."""
        suite = _suite_id(suite)
        self._suite = suite
        raw = require_bytes(raw, _PRIVATE_LEN[suite], f"HPKE private key ({suite.name})")
        self._raw = raw
        try:
            xkey = x25519.X25519PrivateKey.from_private_bytes(raw[-X25519_LEN:])
            self._xpub = xkey.public_key().public_bytes_raw()
            if suite is HpkeSuiteId.X25519:
                self._key: _PrivateKey = xkey
                self._mpub = b""
            else:
                mkey = mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:MLKEM768_SEED_LEN])
                self._mpub = mkey.public_key().public_bytes_raw()
                self._key = hpke.MLKEM768X25519PrivateKey(mkey, xkey)
        except ValueError:
            raise HpkeKeyError(f"HPKE private key is not a valid {suite.name} key") from None

    @classmethod
    def generate(cls, rng: Rng, suite: HpkeSuiteId = DEFAULT_SUITE) -> HpkePrivateKey:
        """Make a new key pair from ``rng`` (``os.urandom`` in production); hybrid by default."""
        suite = _suite_id(suite)
        n = _PRIVATE_LEN[suite]
        return cls(suite, require_bytes(rng(n), n, "rng output"))

    @classmethod
    def from_bytes(cls, data: bytes) -> HpkePrivateKey:
        """Load a key serialized by :meth:`to_bytes` (``suite_id | raw``)."""
        data = bytes(data)
        if not data:
            raise HpkeKeyError("serialized HPKE private key is empty")
        return cls(_suite_id(data[0]), data[1:])

    def to_bytes(self) -> bytes:
        """Serialize as ``suite_id:u8 | raw``. SECRET: store only in an encrypted keystore."""
        return u8(self._suite) + self._raw

    @property
    def suite(self) -> HpkeSuiteId:
        """This key's suite."""
        return self._suite

    def public_key_bytes(self) -> bytes:
        """Raw public key bytes (32 bytes for X25519, 1216 for ML-KEM-768+X25519)."""
        return self._mpub + self._xpub

    def open(self, blob: bytes, info: bytes) -> bytes:
        """Open a sealed blob addressed to this key; see :func:`open_sealed`."""
        return open_sealed(self, blob, info)

    def __repr__(self) -> str:
        return f"HpkePrivateKey(suite={self._suite.name}, public=0x{self._xpub.hex()[:16]}...)"


def seal(
    public_key: bytes,
    plaintext: bytes,
    info: bytes,
    suite: HpkeSuiteId | None = None,
) -> bytes:
    """Seal ``plaintext`` to ``public_key`` under ``info``; returns ``suite_id | enc | ct``.

    ``suite`` defaults to the one implied by the key length; if given, it must match.
    """
    pk = bytes(public_key)
    sid = suite_for_public_key(pk) if suite is None else _suite_id(suite)
    key = _load_public(pk, sid)
    try:
        return u8(sid) + _SUITES[sid].encrypt(plaintext, key, info=bytes(info))
    except ValueError:
        raise HpkeKeyError(f"cannot seal to this {sid.name} public key (invalid point)") from None


def open_sealed(private_key: HpkePrivateKey, blob: bytes, info: bytes) -> bytes:
    """Open a blob from :func:`seal`; raise :class:`HpkeDecryptionError` on any failure."""
    blob = bytes(blob)
    if not blob:
        raise HpkeDecryptionError("sealed blob is empty")
    sid = _suite_id(blob[0])
    if sid is not private_key.suite:
        raise HpkeDecryptionError(f"sealed blob uses suite {sid.name}, the key is {private_key.suite.name}")
    try:
        return _SUITES[sid].decrypt(blob[1:], private_key._key, info=bytes(info))
    except (InvalidTag, ValueError):
        raise HpkeDecryptionError(
            f"sealed blob ({len(blob)} bytes, {sid.name}) failed to open: wrong key, "
            "wrong info/context, or tampered"
        ) from None


# --- info strings ---------------------------------------------------------------


def _address(holder: bytes | str, name: str = "holder") -> bytes:
    if isinstance(holder, str):
        h = holder[2:] if holder[:2].lower() == "0x" else holder
        try:
            raw = bytes.fromhex(h)
        except ValueError:
            raise HpkeKeyError(f"{name} address {holder!r} is not hex") from None
        return require_bytes(raw, 20, f"{name} address")
    return require_bytes(holder, 20, f"{name} address")


def _word(value: bytes | int, name: str) -> bytes:
    if isinstance(value, int):
        return u256be(value, name)
    return require_bytes(value, 32, name)



def _request_info(
    kind: bytes, chain_id: int, request_id: bytes | int, dataset_id: bytes, holder: bytes | str
) -> bytes:
    return (
        INFO_PREFIX
        + kind
        + u256be(chain_id, "chain_id")
        + _word(request_id, "request_id")
        + require_bytes(dataset_id, 32, "dataset_id")
        + _address(holder)
    )



def delivery_info(chain_id: int, request_id: bytes | int, dataset_id: bytes, holder: bytes | str) -> bytes:
    """``shardkey/delivery/v1 | chain_id | request_id | dataset_id | holder:20``."""
    return _request_info(b"delivery/v1", chain_id, request_id, dataset_id, holder)


def committee_share_info(chain_id: int, dataset_id: bytes, holder: bytes | str, member: bytes | str,
                         epoch: int) -> bytes:
    """``shardkey/kos-share/v1 | chain_id:u256 | dataset_id | holder:20 | member:20 | epoch:u64``.

    The owner seals member ``member``'s share of fragment holder ``holder``'s wrap key under it
    (threshold KOS, docs/DESIGN.md).
    """
    return (
        INFO_PREFIX
        + b"kos-share/v1"
        + u256be(chain_id, "chain_id")
        + require_bytes(dataset_id, 32, "dataset_id")
        + _address(holder)
        + _address(member, "member")
        + u64be(epoch, "epoch")
    )


def committee_release_info(chain_id: int, request_id: bytes | int, dataset_id: bytes, holder: bytes | str,
                           member: bytes | str) -> bytes:
    """``shardkey/kos-release/v1 | chain_id | request_id | dataset_id | holder:20 | member:20``.

    A member seals its signed share envelope to fragment holder ``holder`` under it.
    """
    base = _request_info(b"kos-release/v1", chain_id, request_id, dataset_id, holder)
    return base + _address(member, "member")
