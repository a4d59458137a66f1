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
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

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
                 timestamp: int, nonce: str | None = None) -> dict[str, str]:
    """Headers that authenticate one request from ``account`` to ``holder``."""
    nonce = nonce or os.urandom(16).hex()
    digest = hashlib.sha256(body).hexdigest()
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


def verify_request(headers: dict[str, str], holder: str, method: str, path: str, body: bytes,
                   now: int, nonces: NonceCache) -> str:
    """Check a signed request; return the signing account or raise :class:`AuthError`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        account = lowered[HEADER_ACCOUNT.lower()]
        timestamp_text = lowered[HEADER_TIMESTAMP.lower()]
        nonce = lowered[HEADER_NONCE.lower()]
        signature = lowered[HEADER_SIGNATURE.lower()]
    except KeyError as exc:
        raise AuthError(f"missing header {exc.args[0]}") from None
    if not is_address(account):
        raise AuthError(f"{HEADER_ACCOUNT} is not an address")
    if not timestamp_text.isdigit():
        raise AuthError(f"{HEADER_TIMESTAMP} is not a Unix time")
    timestamp = int(timestamp_text)
    if abs(now - timestamp) > MAX_SKEW:
        raise AuthError(f"request timestamp {timestamp} is more than {MAX_SKEW} s from chain time {now}")
    if len(nonce) != 32 or any(c not in "0123456789abcdef" for c in nonce):
        raise AuthError(f"{HEADER_NONCE} must be 16 bytes of lowercase hex")
    try:
        sig = bytes.fromhex(signature.removeprefix("0x"))
        signer = Account.recover_message(encode_defunct(_message(
            holder, method, path, hashlib.sha256(body).hexdigest(), timestamp, nonce)), signature=sig)
    except Exception:
        raise AuthError("signature is malformed") from None
    if signer != to_checksum_address(account):
        raise AuthError("signature does not match the account")
    if not nonces.use(signer, nonce):
        raise AuthError("nonce already used (replayed request)")
    return str(signer)
