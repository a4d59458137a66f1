"""Signed holder requests: the declared body is signed, and nonces expire on chain time."""

from __future__ import annotations

import hashlib
import time

import pytest
from eth_account import Account

from shardkey.httpauth import (
    HEADER_CONTENT_LENGTH,
    HEADER_CONTENT_SHA256,
    MAX_SKEW,
    AuthError,
    NonceCache,
    sign_request,
    verify_headers,
    verify_request,
)

ACCOUNT = Account.from_key("0x" + "11" * 32)
HOLDER = Account.from_key("0x" + "22" * 32).address
PATH = "/v1/datasets/0x" + "ab" * 32 + "/shards/0?request=1"


def test_a_nonce_is_not_forgotten_while_chain_time_stands_still(monkeypatch) -> None:
    host = [time.monotonic()]
    monkeypatch.setattr(time, "monotonic", lambda: host[0])
    chain_now = 1_700_000_000
    nonces = NonceCache()
    headers = sign_request(ACCOUNT, HOLDER, "GET", PATH, b"", chain_now)
    assert verify_request(headers, HOLDER, "GET", PATH, b"", chain_now, nonces) == ACCOUNT.address
    host[0] += 10 * MAX_SKEW  # hours of host time; the chain made no block
    with pytest.raises(AuthError, match="replayed"):
        verify_request(headers, HOLDER, "GET", PATH, b"", chain_now, nonces)
    with pytest.raises(AuthError, match="replayed"):  # still fresh by chain time: still refused
        verify_request(headers, HOLDER, "GET", PATH, b"", chain_now + MAX_SKEW, nonces)
    with pytest.raises(AuthError, match="more than"):  # stale by chain time: refused anyway
        verify_request(headers, HOLDER, "GET", PATH, b"", chain_now + MAX_SKEW + 1, nonces)


def test_nonces_expire_by_chain_time_and_memory_is_bounded() -> None:
    nonces = NonceCache(window=MAX_SKEW, max_entries=3)
    for i in range(3):
        assert nonces.use("a", f"{i:032x}", 1000, 1000)
    with pytest.raises(AuthError, match="try again later"):  # full of fresh nonces: fail closed
        nonces.use("a", "f" * 32, 1000, 1000 + MAX_SKEW)
    assert not nonces.use("a", f"{0:032x}", 1000, 1000 + MAX_SKEW)  # still remembered
    assert nonces.use("a", "f" * 32, 1000 + MAX_SKEW + 1, 1000 + MAX_SKEW + 1)  # old ones pruned
    assert len(nonces) == 1


def test_the_declared_body_is_what_is_signed() -> None:
    body = b"shard ciphertext"
    now = 1_700_000_000
    headers = sign_request(ACCOUNT, HOLDER, "PUT", PATH, body, now)
    assert headers[HEADER_CONTENT_SHA256] == hashlib.sha256(body).hexdigest()
    assert headers[HEADER_CONTENT_LENGTH] == str(len(body))
    signed = verify_headers(headers, HOLDER, "PUT", PATH, now, NonceCache())
    assert (signed.signer, signed.body_sha256, signed.body_length) == (
        ACCOUNT.address, hashlib.sha256(body).digest(), len(body))
    for name, value in ((HEADER_CONTENT_LENGTH, str(len(body) + 1)),
                        (HEADER_CONTENT_SHA256, hashlib.sha256(b"other").hexdigest())):
        with pytest.raises(AuthError, match="does not match the account"):
            verify_headers(dict(headers, **{name: value}), HOLDER, "PUT", PATH, now, NonceCache())
    with pytest.raises(AuthError, match="differs from the declared"):
        verify_request(headers, HOLDER, "PUT", PATH, b"other body", now, NonceCache())
    for bad in ("-1", "1e3", "x", "9" * 21):
        with pytest.raises(AuthError, match=HEADER_CONTENT_LENGTH):
            verify_headers(dict(headers, **{HEADER_CONTENT_LENGTH: bad}), HOLDER, "PUT", PATH, now,
                           NonceCache())


def test_signed_headers_are_pinned_byte_for_byte() -> None:
    """"ShardKey HTTP v2" as the holders in the field verify it: one signed header set, pinned
    (a lowercase holder address is checksummed into the message, the method upper-cased)."""
    body = b"shard ciphertext"
    headers = sign_request(ACCOUNT, HOLDER.lower(), "put", PATH, body, 1_700_000_000, "0f" * 16)
    assert headers == {
        "X-ShardKey-Account": "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A",
        "X-ShardKey-Timestamp": "1700000000",
        "X-ShardKey-Nonce": "0f" * 16,
        "X-ShardKey-Content-Sha256": "e92deca288de78f8b26f0fe214faf4ab56f2cc2526ae466b0238b8187f7ffafe",
        "X-ShardKey-Content-Length": "16",
        "X-ShardKey-Signature": "0x0b06c0cc38e7b78326d0443fc36cc4203337dcb8d30f3a8ebab75547067443f9"
                                "01b378abb5106d62b3618b30e6de93fa60606beabc0557984866f1ed29132f041b",
    }
    signed = verify_headers(headers, HOLDER, "PUT", PATH, 1_700_000_000, NonceCache())
    assert signed.signer == ACCOUNT.address


def test_the_signer_is_recovered_as_eth_account_recovers_it() -> None:
    """The holder compares address bytes instead of checksummed text: v as 27/28 or 0/1 passes
    and fails as with ``Account.recover_message``; any other v (EIP-155 style, out of range) is
    refused as malformed, which no signer of this scheme produces."""
    from eth_account.messages import encode_defunct

    from shardkey.httpauth import HEADER_SIGNATURE, _message
    now = 1_700_000_000
    headers = sign_request(ACCOUNT, HOLDER, "GET", PATH, b"", now, "0e" * 16)
    message = _message(HOLDER, "GET", PATH, headers[HEADER_CONTENT_SHA256], 0, now, "0e" * 16)
    raw = bytes.fromhex(headers[HEADER_SIGNATURE][2:])

    def verified(v: int) -> str | None:
        sig = "0x" + (raw[:64] + bytes([v])).hex()
        try:
            return verify_headers(dict(headers, **{HEADER_SIGNATURE: sig}), HOLDER, "GET", PATH, now,
                                  NonceCache()).signer
        except AuthError:
            return None

    for v in (raw[64], raw[64] - 27, 55 - raw[64], 28 - raw[64]):  # as signed, as 0/1, flipped both ways
        try:
            expected: str | None = Account.recover_message(encode_defunct(message),
                                                           signature=raw[:64] + bytes([v]))
        except Exception:
            expected = None
        assert (verified(v) == ACCOUNT.address) == (expected == ACCOUNT.address), f"v={v}"
    assert verified(raw[64]) == ACCOUNT.address
    for v in (raw[64] + 10, 35, 36, 255):
        sig = "0x" + (raw[:64] + bytes([v])).hex()
        with pytest.raises(AuthError, match="signature is malformed"):
            verify_headers(dict(headers, **{HEADER_SIGNATURE: sig}), HOLDER, "GET", PATH, now, NonceCache())
    other = Account.from_key("0x" + "33" * 32)
    with pytest.raises(AuthError, match="does not match the account"):
        verify_headers(dict(headers, **{"X-ShardKey-Account": other.address}), HOLDER, "GET", PATH, now,
                       NonceCache())
