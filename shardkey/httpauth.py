"""Signed HTTP requests between clients and holders.

Every request (upload, download, whatever its body) carries six headers:
``X-ShardKey-Account``, ``X-ShardKey-Timestamp`` (Unix seconds, chain time),
``X-ShardKey-Nonce`` (16 random bytes, hex), ``X-ShardKey-Content-Sha256`` (hex SHA-256
of the body the client is about to send), ``X-ShardKey-Content-Length`` (its length in
bytes, decimal) and ``X-ShardKey-Signature``, an EIP-191 signature by the account over::

    ShardKey HTTP v2
    <holder address, checksummed>
    <METHOD>
    <path with query>
    <declared SHA-256 of the body, hex>
    <declared body length, decimal>
    <timestamp>
    <nonce>

The body is *declared*, not hashed by the receiver first, so a holder checks the
signature and spends the nonce before it reads a single body byte (:func:`verify_headers`),
charges the verified account, then streams at most the declared length and refuses a body
whose length or hash differs. Binding the holder's address stops replay against another
holder; a holder accepts a timestamp within ``MAX_SKEW`` seconds of its chain time and
each nonce once while it is fresh by that same chain time (:class:`NonceCache`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from shardkey.errors import ShardKeyError
from shardkey.secp256k1 import recover_address, sign_hash

MAX_SKEW = 300
NONCE_CACHE_ENTRIES = 65_536
HEADER_ACCOUNT = "X-ShardKey-Account"
HEADER_TIMESTAMP = "X-ShardKey-Timestamp"
HEADER_NONCE = "X-ShardKey-Nonce"
HEADER_CONTENT_SHA256 = "X-ShardKey-Content-Sha256"
HEADER_CONTENT_LENGTH = "X-ShardKey-Content-Length"
HEADER_SIGNATURE = "X-ShardKey-Signature"
HEADER_RECEIPT = "X-ShardKey-Receipt"
HEADER_SHARD_HASH = "X-ShardKey-Shard-Sha256"
_MAX_DECLARED_LENGTH = 2**63 - 1
_HEX = frozenset("0123456789abcdef")


class AuthError(ShardKeyError):
    """A signed request failed verification; the message says which check."""


@dataclass(frozen=True)
class SignedRequest:
    """What a verified request's signer declared about the body it sends."""

    signer: str
    body_sha256: bytes
    body_length: int


@functools.lru_cache(maxsize=4096)
def _checksummed(address: str) -> str | None:
    """``address`` checksummed, or None when it is not an address; each text is checked once
    (a holder signs and is signed for with a handful of addresses: checksumming them per
    request was a tenth of a holder's CPU)."""
    if not address.isascii() or not is_address(address):
        return None
    return str(to_checksum_address(address))


def _message(holder: str, method: str, path: str, body_sha256: str, body_length: int,
             timestamp: int, nonce: str) -> bytes:
    checksummed = _checksummed(holder)
    if checksummed is None:
        raise ValueError(f"not an address: {holder!r}")
    return "\n".join(["ShardKey HTTP v2", checksummed, method.upper(), path,
                      body_sha256, str(body_length), str(timestamp), nonce]).encode()


def _eip191_hash(message: bytes) -> Hash32:
    """The EIP-191 (``personal_sign``) hash of ``message``, as ``encode_defunct`` signs it."""
    return Hash32(keccak(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message))


def sign_request(account: LocalAccount, holder: str, method: str, path: str, body: bytes,
                 timestamp: int, nonce: str | None = None, *,
                 body_sha256: bytes | None = None) -> dict[str, str]:
    """Headers that authenticate one request from ``account`` to ``holder``, declaring
    ``body``'s SHA-256 and length.

    ``body_sha256`` saves hashing a large body the caller has hashed already; it must be
    the body's digest (the holder checks it, so a wrong one is just refused).
    """
    nonce = nonce or os.urandom(16).hex()
    digest = (body_sha256 or hashlib.sha256(body).digest()).hex()
    # Exactly account.sign_message(encode_defunct(message)): EIP-191's hash, signed
    # (shardkey.secp256k1); pinned by tests/unit/test_httpauth.py.
    signature = sign_hash(account, bytes(_eip191_hash(
        _message(holder, method, path, digest, len(body), timestamp, nonce))))
    return {HEADER_ACCOUNT: account.address, HEADER_TIMESTAMP: str(timestamp),
            HEADER_NONCE: nonce, HEADER_CONTENT_SHA256: digest,
            HEADER_CONTENT_LENGTH: str(len(body)),
            HEADER_SIGNATURE: "0x" + signature.hex()}


class NonceCache:
    """Nonces of verified requests, each kept while its timestamp is fresh by chain time.

    A request is fresh while ``|now - timestamp| <= window`` with ``now`` the holder's chain
    time, so a nonce is forgotten only once chain time has passed ``timestamp + window``:
    on the very clock that judges freshness. A chain that stands still forgets nothing,
    and nothing can be replayed. Memory is bounded by ``max_entries``; when that many
    nonces are fresh at once a new request is refused (fail closed: evicting a fresh
    nonce would reopen its replay).
    """

    def __init__(self, window: int = MAX_SKEW, max_entries: int = NONCE_CACHE_ENTRIES) -> None:
        self.window = window
        self.max_entries = max_entries
        self._seen: dict[tuple[str, str], int] = {}  # (account, nonce) -> forget after this time
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def use(self, account: str, nonce: str, timestamp: int, now: int) -> bool:
        """Record a nonce signed at ``timestamp``, at chain time ``now``; False when it
        was seen already. Raises :class:`AuthError` when the cache is full of fresh nonces."""
        with self._lock:
            key = (account, nonce)
            expiry = self._seen.get(key)
            if expiry is not None and now <= expiry:
                return False
            if len(self._seen) >= self.max_entries:
                self._seen = {k: t for k, t in self._seen.items() if now <= t}
                if len(self._seen) >= self.max_entries:
                    raise AuthError(f"more than {self.max_entries} requests within the freshness "
                                    "window; try again later")
            self._seen[key] = timestamp + self.window
            return True


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    names = (HEADER_ACCOUNT, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_CONTENT_SHA256,
             HEADER_CONTENT_LENGTH, HEADER_SIGNATURE)
    missing = [name for name in names if name.lower() not in lowered]
    if missing:
        raise AuthError(f"missing header {missing[0]}")
    return {name: lowered[name.lower()] for name in names}


def _decimal(text: str, header: str, limit: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) > limit:
        raise AuthError(f"{header} is not a decimal number below {limit + 1}")
    return int(text)


def _hex(text: str, length: int, header: str) -> str:
    if len(text) != length or not set(text) <= _HEX:
        raise AuthError(f"{header} must be {length // 2} bytes of lowercase hex")
    return text


def precheck(headers: Mapping[str, str], now: int) -> str:
    """The checks that need no key recovery (headers present and well formed, timestamp
    within ``MAX_SKEW`` of chain time ``now``); return the claimed account, checksummed."""
    values = _headers(headers)
    account = _checksummed(values[HEADER_ACCOUNT])
    if account is None:
        raise AuthError(f"{HEADER_ACCOUNT} is not an address")
    timestamp = _decimal(values[HEADER_TIMESTAMP], HEADER_TIMESTAMP, 2**64 - 1)
    if abs(now - timestamp) > MAX_SKEW:
        raise AuthError(f"request timestamp {timestamp} is more than {MAX_SKEW} s from "
                        f"chain time {now}")
    _hex(values[HEADER_NONCE], 32, HEADER_NONCE)
    _hex(values[HEADER_CONTENT_SHA256], 64, HEADER_CONTENT_SHA256)
    _decimal(values[HEADER_CONTENT_LENGTH], HEADER_CONTENT_LENGTH, _MAX_DECLARED_LENGTH)
    return account


def _recover(message: bytes, signature_hex: str) -> bytes:
    """The 20-byte address that signed ``message`` (EIP-191) with ``signature_hex``; what
    ``Account.recover_message`` recovers, without checksumming it (the caller compares bytes)."""
    return recover_address(bytes(_eip191_hash(message)), bytes.fromhex(signature_hex.removeprefix("0x")))


def verify_headers(headers: Mapping[str, str], holder: str, method: str, path: str, now: int,
                   nonces: NonceCache) -> SignedRequest:
    """Check a signed request from its headers alone (run before reading the body); return
    the signer and the body it declared, or raise :class:`AuthError`. The nonce is spent
    only once the signature verified; the caller must then refuse a body that differs
    from the declaration."""
    claimed = precheck(headers, now)
    values = _headers(headers)
    timestamp = int(values[HEADER_TIMESTAMP])
    nonce, digest = values[HEADER_NONCE], values[HEADER_CONTENT_SHA256]
    length = int(values[HEADER_CONTENT_LENGTH])
    message = _message(holder, method, path, digest, length, timestamp, nonce)
    try:
        signer = _recover(message, values[HEADER_SIGNATURE])
    except Exception:
        raise AuthError("signature is malformed") from None
    if not hmac.compare_digest(signer, bytes.fromhex(claimed[2:])):
        raise AuthError("signature does not match the account")
    if not nonces.use(claimed, nonce, timestamp, now):
        raise AuthError("nonce already used (replayed request)")
    return SignedRequest(claimed, bytes.fromhex(digest), length)


def verify_request(headers: Mapping[str, str], holder: str, method: str, path: str, body: bytes,
                   now: int, nonces: NonceCache) -> str:
    """Check a signed request with its whole body; return the signer or raise :class:`AuthError`."""
    signed = verify_headers(headers, holder, method, path, now, nonces)
    if signed.body_length != len(body) or not hmac.compare_digest(
            signed.body_sha256, hashlib.sha256(body).digest()):
        raise AuthError("the body differs from the declared length and SHA-256")
    return signed.signer
