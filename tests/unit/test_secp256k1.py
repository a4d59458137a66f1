"""shardkey.secp256k1 signs and recovers exactly as eth-account does."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.secp256k1 import recover_address, sign_hash

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(keys, digests)
def test_signs_as_eth_account_and_recovers_its_signer(key: bytes, digest: bytes) -> None:
    account = Account.from_key(key)
    signature = sign_hash(account, digest)
    assert signature == bytes(account.unsafe_sign_hash(digest).signature)
    assert signature[64] in (27, 28)
    expected = bytes.fromhex(account.address[2:])
    assert recover_address(digest, signature) == expected
    assert recover_address(digest, signature[:64] + bytes([signature[64] - 27])) == expected  # v 0/1
    assert Account._recover_hash(digest, signature=signature) == account.address


def test_another_digest_recovers_another_address() -> None:
    account = Account.from_key(b"\x01" * 32)
    signature = sign_hash(account, b"\x02" * 32)
    assert recover_address(b"\x03" * 32, signature) != bytes.fromhex(account.address[2:])


@pytest.mark.parametrize("digest, signature", [
    (b"\x00" * 31, b"\x01" * 64 + b"\x1b"),  # a 31-byte hash
    (b"\x00" * 32, b"\x01" * 64),  # no v
    (b"\x00" * 32, b"\x01" * 64 + b"\x05"),  # v not 0, 1, 27 or 28
    (b"\x00" * 32, b"\x00" * 64 + b"\x1b"),  # r = s = 0: recovers no key
    (b"\x00" * 32, b"\xff" * 64 + b"\x1b"),  # r and s above the group order
])
def test_a_signature_that_recovers_no_key_is_refused(digest: bytes, signature: bytes) -> None:
    with pytest.raises(ValueError):
        recover_address(digest, signature)


def test_only_a_32_byte_hash_is_signed() -> None:
    with pytest.raises(ValueError):
        sign_hash(Account.from_key(b"\x01" * 32), b"\x00" * 33)
