"""Signed HTTP requests at the holder: chain time, header pre-checks, digest verification.

The scheme is :mod:`shardkey.httpauth`'s. That module verifies a request given its whole
body; uploads are streamed to disk instead, so :func:`verify_digest` checks the same
signature given the body's SHA-256 (the message layout is the one documented there).
:func:`precheck` runs the checks that need no body (headers present and well formed,
timestamp within ``MAX_SKEW`` of chain time) before a single body byte is read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import is_address, to_checksum_address

from shardkey.chain.connection import ChainClient
from shardkey.httpauth import (
    HEADER_ACCOUNT,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAX_SKEW,
    AuthError,
    NonceCache,
)

MESSAGE_TAG = "ShardKey HTTP v1"


class ChainTime:
    """The latest block's timestamp, re-read at most every ``max_age`` seconds."""

    def __init__(self, client: ChainClient, max_age: float = 1.0):
        self._client = client
        self._max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[int, float] | None = None

    def now(self) -> int:
        """Chain time (Unix seconds); blocking RPC at most once per ``max_age``."""
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[1] > self._max_age:
                self._cached = (self._client.latest_timestamp(), time.monotonic())
            return self._cached[0]


def _headers(headers: Mapping[str, str]) -> tuple[str, str, str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        return (lowered[HEADER_ACCOUNT.lower()], lowered[HEADER_TIMESTAMP.lower()],
                lowered[HEADER_NONCE.lower()], lowered[HEADER_SIGNATURE.lower()])
    except KeyError as exc:
        raise AuthError(f"missing header {exc.args[0]}") from None


def precheck(headers: Mapping[str, str], now: int) -> str:
    """Check what needs no body; return the claimed account (checksummed)."""
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


def verify_digest(headers: Mapping[str, str], holder: str, method: str, path: str,
                  body_sha256: bytes, now: int, nonces: NonceCache) -> str:
    """Verify a signed request given its body's SHA-256; return the signer.

    Same checks, in the same order, as :func:`shardkey.httpauth.verify_request`; the
    nonce is spent only once the signature verified.
    """
    claimed = precheck(headers, now)
    _, timestamp_text, nonce, signature = _headers(headers)
    message = "\n".join([MESSAGE_TAG, to_checksum_address(holder), method.upper(), path,
                         body_sha256.hex(), str(int(timestamp_text)), nonce]).encode()
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
