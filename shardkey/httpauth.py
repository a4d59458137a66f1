"""Signed HTTP requests between clients and holders.

A request carries four headers: ``X-ShardKey-Account``, ``X-ShardKey-Timestamp`` (Unix
seconds, chain time), ``X-ShardKey-Nonce`` (16 random bytes, hex) and
``X-ShardKey-Signature``, an EIP-191 signature by the account over::

    ShardKey HTTP v1
    <holder address, checksummed>
    <METHOD>
    <path with query>
    <SHA-256 of the body, hex>
    <timestamp>
    <nonce>

Binding the holder's address stops replay against another holder; the body hash binds
the upload; a holder accepts a timestamp within ``MAX_SKEW`` seconds of its chain time
and each nonce once while it is fresh.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from shardkey.errors import ShardKeyError

MAX_SKEW = 300
HEADER_ACCOUNT = "X-ShardKey-Account"
HEADER_TIMESTAMP = "X-ShardKey-Timestamp"
HEADER_NONCE = "X-ShardKey-Nonce"
HEADER_SIGNATURE = "X-ShardKey-Signature"
HEADER_RECEIPT = "X-ShardKey-Receipt"
HEADER_SHARD_HASH = "X-ShardKey-Shard-Sha256"


class AuthError(ShardKeyError):
    """A signed request failed verification; the message says which check."""


def _message(holder: str, method: str, path: str, body_sha256: str, timestamp: int, nonce: str) -> bytes:
    return "\n".join(["ShardKey HTTP v1", to_checksum_address(holder), method.upper(), path,
                      body_sha256, str(timestamp), nonce]).encode()


def sign_request(account: LocalAccount, holder: str, method: str, path: str, body: bytes,
                 timestamp: int, nonce: str | None = None, *,
                 body_sha256: bytes | None = None) -> dict[str, str]:
    """Headers that authenticate one request from ``account`` to ``holder``.

    ``body_sha256`` saves hashing a large body the caller has hashed already; it must be
    the body's digest (the holder recomputes it, so a wrong one is just refused).
    """
    nonce = nonce or os.urandom(16).hex()
    digest = (body_sha256 or hashlib.sha256(body).digest()).hex()
    signed = account.sign_message(encode_defunct(
        _message(holder, method, path, digest, timestamp, nonce)))
    return {HEADER_ACCOUNT: account.address, HEADER_TIMESTAMP: str(timestamp),
            HEADER_NONCE: nonce, HEADER_SIGNATURE: "0x" + bytes(signed.signature).hex()}


@dataclass
class NonceCache:
    """Nonces seen within the freshness window (in memory; the window bounds replay)."""

    window: int = MAX_SKEW

    def __post_init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def use(self, account: str, nonce: str) -> bool:
        """Record a nonce; False when it was seen already."""
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < 2 * self.window}
            key = (account, nonce)
            if key in self._seen and now - self._seen[key] < 2 * self.window:
                return False
            self._seen[key] = now
            return True


def _headers(headers: Mapping[str, str]) -> tuple[str, str, str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        return (lowered[HEADER_ACCOUNT.lower()], lowered[HEADER_TIMESTAMP.lower()],
                lowered[HEADER_NONCE.lower()], lowered[HEADER_SIGNATURE.lower()])
    except KeyError as exc:
        raise AuthError(f"missing header {exc.args[0]}") from None


def precheck(headers: Mapping[str, str], now: int) -> str:
    """The checks that need no body (headers present and well formed, timestamp within
    ``MAX_SKEW`` of chain time); return the claimed account, checksummed.

    A holder runs this before reading a single body byte.
    """
    account, timestamp_text, nonce, _ = _headers(headers)
    if not account.isascii() or not is_address(account):
        raise AuthError(f"{HEADER_ACCOUNT} is not an address")
    if not timestamp_text.isascii() or not timestamp_text.isdigit() or len(timestamp_text) > 20:
        raise AuthError(f"{HEADER_TIMESTAMP} is not a Unix time")
    if abs(now - int(timestamp_text)) > MAX_SKEW:
        raise AuthError(f"request timestamp {timestamp_text} is more than {MAX_SKEW} s from "
                        f"chain time {now}")
    if len(nonce) != 32 or any(c not in "0123456789abcdef" for c in nonce):
        raise AuthError(f"{HEADER_NONCE} must be 16 bytes of lowercase hex")
    return str(to_checksum_address(account))


def verify_request_digest(headers: Mapping[str, str], holder: str, method: str, path: str,
                          body_sha256: bytes, now: int, nonces: NonceCache) -> str:
    """Check a signed request given its body's SHA-256 (for streamed bodies); return the
    signer or raise :class:`AuthError`. The nonce is spent only once the signature verified.
    """
    claimed = precheck(headers, now)
    _, timestamp_text, nonce, signature = _headers(headers)
    message = _message(holder, method, path, body_sha256.hex(), int(timestamp_text), nonce)
    try:
        sig = bytes.fromhex(signature.removeprefix("0x"))
        signer = Account.recover_message(encode_defunct(message), signature=sig)
    except Exception:
        raise AuthError("signature is malformed") from None
    if signer != claimed:
        raise AuthError("signature does not match the account")
    if not nonces.use(signer, nonce):
        raise AuthError("nonce already used (replayed request)")
    return str(signer)


def verify_request(headers: Mapping[str, str], holder: str, method: str, path: str, body: bytes,
                   now: int, nonces: NonceCache) -> str:
    """Check a signed request with its whole body; return the signer or raise :class:`AuthError`."""
    return verify_request_digest(headers, holder, method, path, hashlib.sha256(body).digest(), now,
                                 nonces)
