"""Shard digests behind the two receipts a holder signs (docs/HOLDER_API.md).

- ``ShardServed(requestId, datasetId, shardIndex, ciphertextHash)``: signed for every
  download, bound to the request it was served under; the only receipt
  ``reportShardFailure`` accepts.
- ``ShardReceipt(datasetId, shardIndex, ciphertextHash)``: the custody proof of the public
  ``/receipts``; no request, so it can never be used as a serving receipt.

Hashing a shard is what both cost, and ``/receipts`` is public: :class:`ShardDigests`
keeps each committed shard's SHA-256 keyed by the file's inode, size and mtime, and
re-reads a file at most once per stamp and per ``rehash_after`` seconds however many
callers ask at once (concurrent misses of the same file wait for one read). A shard's first
digest is the one custody checked against its on-chain hash when it committed the shard
(``known``: the store's), so serving a shard just stored does not read it twice. Committed
files are never rewritten in place, so a new stamp means a new file; the periodic re-hash catches
what a stamp cannot show (bit rot, a write that kept the mtime), so a custody receipt says
"this holder read these bytes at most ``rehash_after`` seconds ago".
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from holder_agent.storage import hash_handle
from shardkey.chain import eip712
from shardkey.secp256k1 import sign_hash

REHASH_SECONDS = 3600.0  # the longest a cached digest stands for the file without a re-read
_LOCK_STRIPES = 64

_DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_SERVED_TYPE = b"ShardServed(uint256 requestId,bytes32 datasetId,uint32 shardIndex,bytes32 ciphertextHash)"

ShardKey = tuple[bytes, int]  # (dataset id, shard index)
Stamp = tuple[int, int, int]  # (inode, size, mtime in ns)
Known = Callable[[ShardKey, Stamp], "tuple[bytes, float] | None"]  # (digest, its age in s)


@dataclass
class _Entry:
    stamp: Stamp
    hashed_at: float
    digest: bytes
    custody: bytes | None = None  # the ShardReceipt signature over ``digest``, once made


class ShardDigests:
    """SHA-256 of committed shards, each file re-read at most once per stamp and period."""

    MAX_ENTRIES = 4096

    def __init__(self, rehash_after: float = REHASH_SECONDS,
                 clock: Callable[[], float] = time.monotonic, known: Known | None = None) -> None:
        self.rehash_after = rehash_after
        self._clock = clock
        # Digests known elsewhere (the store's, checked at custody), asked before a file is
        # read: a shard served for the first time after its upload is not re-read.
        self.known = known
        self._lock = threading.Lock()
        self._entries: dict[ShardKey, _Entry] = {}
        self._stripes = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    def digest(self, key: ShardKey, handle: BinaryIO) -> bytes:
        """The SHA-256 of the open committed shard file ``handle`` (read only when stale)."""
        return self._entry(key, handle).digest

    def custody(self, key: ShardKey, handle: BinaryIO,
                sign: Callable[[bytes], bytes]) -> tuple[bytes, bytes]:
        """The digest and its custody signature (``sign(digest)``, made once per digest)."""
        entry = self._entry(key, handle)
        if entry.custody is None:
            entry.custody = sign(entry.digest)
        return entry.digest, entry.custody

    def _fresh(self, key: ShardKey, stamp: Stamp) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry.stamp != stamp or self._clock() - entry.hashed_at >= self.rehash_after:
            return None
        return entry

    def _entry(self, key: ShardKey, handle: BinaryIO) -> _Entry:
        st = os.fstat(handle.fileno())
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        entry = self._fresh(key, stamp)
        if entry is not None:
            return entry
        with self._stripes[hash(key) % _LOCK_STRIPES]:
            entry = self._fresh(key, stamp)  # another caller may have read it meanwhile
            if entry is not None:
                return entry
            entry = self._known(key, stamp)
            if entry is None:
                handle.seek(0)
                entry = _Entry(stamp, self._clock(), hash_handle(handle))
            with self._lock:
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = entry
        return entry

    def _known(self, key: ShardKey, stamp: Stamp) -> _Entry | None:
        known = self.known(key, stamp) if self.known is not None else None
        if known is None or known[1] >= self.rehash_after:
            return None
        return _Entry(stamp, self._clock() - known[1], known[0])


class ServedSigner:
    """Signs ``ShardServed`` receipts (:mod:`shardkey.chain.eip712`'s type and domain) with the
    domain separator hashed once: the EIP-712 digest of a download is two keccaks of fixed
    layout instead of eth-account's typed-data encoding (which cost ~0.75 ms per shard).
    ``tests/unit/test_holder_served_signer.py`` pins it to ``eip712.digest`` and ``eip712.sign``."""

    def __init__(self, domain: eip712.Domain, account: LocalAccount) -> None:
        self._account = account
        separator = keccak(keccak(_DOMAIN_TYPE) + keccak(eip712.DOMAIN_NAME.encode())
                           + keccak(eip712.DOMAIN_VERSION.encode()) + domain.chain_id.to_bytes(32, "big")
                           + bytes(12) + bytes.fromhex(domain.coordinator.removeprefix("0x")))
        self._prefix = b"\x19\x01" + separator
        self._typehash = keccak(_SERVED_TYPE)

    def digest(self, request_id: int, dataset_id: bytes, shard_index: int, ciphertext_hash: bytes) -> bytes:
        """The EIP-712 digest of ``ShardServed(request_id, dataset_id, shard_index, ciphertext_hash)``."""
        if len(dataset_id) != 32 or len(ciphertext_hash) != 32 or not 0 <= shard_index < 2**32:
            raise ValueError("ShardServed takes a 32-byte dataset id and hash and a uint32 index")
        struct = keccak(self._typehash + request_id.to_bytes(32, "big") + dataset_id
                        + shard_index.to_bytes(32, "big") + ciphertext_hash)
        return bytes(keccak(self._prefix + struct))

    def sign(self, request_id: int, dataset_id: bytes, shard_index: int, ciphertext_hash: bytes) -> bytes:
        """This holder's 65-byte r||s||v signature, as ``eip712.sign`` makes it."""
        return sign_hash(self._account, self.digest(request_id, dataset_id, shard_index, ciphertext_hash))
