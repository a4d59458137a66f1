"""Ethereum account signatures straight on libsecp256k1 (coincurve), for the per-shard paths.

eth-account signs a hash through several layers (key parsing, a backend lookup, objects per
call) that cost about 0.3 ms of the 0.35 ms a signature takes; a store signs a request per
shard and a holder signs a receipt per served shard and checks a signature per request. These
functions give exactly what eth-account gives (RFC 6979 deterministic, low s, ``v`` 27 or 28;
pinned by ``tests/unit/test_secp256k1.py``) with one libsecp256k1 key object per account.
"""

from __future__ import annotations

import threading
import weakref

import coincurve
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

_KEYS: weakref.WeakKeyDictionary[LocalAccount, coincurve.PrivateKey] = weakref.WeakKeyDictionary()
_KEYS_LOCK = threading.Lock()


def _key(account: LocalAccount) -> coincurve.PrivateKey:
    with _KEYS_LOCK:
        key = _KEYS.get(account)
        if key is None:
            key = _KEYS[account] = coincurve.PrivateKey(bytes(account.key))
        return key


def sign_hash(account: LocalAccount, digest: bytes) -> bytes:
    """``account``'s 65-byte ``r || s || v`` signature of the 32-byte ``digest`` (``v`` 27 or
    28): ``account.unsafe_sign_hash(digest).signature``."""
    if len(digest) != 32:
        raise ValueError("a signed hash is 32 bytes")
    recoverable = _key(account).sign_recoverable(bytes(digest), hasher=None)
    return recoverable[:64] + bytes([recoverable[64] + 27])


def recover_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key made the 65-byte ``signature`` (``v`` 0, 1, 27 or 28) of
    the 32-byte ``digest``; raises ValueError for a signature that recovers no key."""
    if len(digest) != 32 or len(signature) != 65 or signature[64] not in (0, 1, 27, 28):
        raise ValueError("not a 65-byte recoverable signature of a 32-byte hash")
    public = coincurve.PublicKey.from_signature_and_message(
        signature[:64] + bytes([signature[64] % 27]), bytes(digest), hasher=None)
    return bytes(keccak(public.format(compressed=False)[1:])[-20:])
