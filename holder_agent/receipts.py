"""Shard digests behind the two receipts a holder signs (docs/HOLDER_API.md).

- ``ShardServed(requestId, datasetId, shardIndex, ciphertextHash)``: signed for every
  download, bound to the request it was served under; the only receipt
  ``reportShardFailure`` accepts.
- ``ShardReceipt(datasetId, shardIndex, ciphertextHash)``: the custody proof of the public
  ``/receipts``; no request, so it can never be used as a serving receipt.

Hashing a shard is what both cost, and ``/receipts`` is public: :class:`ShardDigests`
keeps each committed shard's SHA-256 keyed by the file's inode, size and mtime, and
re-reads a file at most once per stamp and per ``rehash_after`` seconds however many
callers ask at once (concurrent misses of the same file wait for one read). Committed files
are never rewritten in place, so a new stamp means a new file; the periodic re-hash catches
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

from holder_agent.storage import hash_handle

REHASH_SECONDS = 3600.0  # the longest a cached digest stands for the file without a re-read
_LOCK_STRIPES = 64

ShardKey = tuple[bytes, int]  # (dataset id, shard index)
Stamp = tuple[int, int, int]  # (inode, size, mtime in ns)


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
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rehash_after = rehash_after
        self._clock = clock
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
            handle.seek(0)
            entry = _Entry(stamp, self._clock(), hash_handle(handle))
            with self._lock:
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = entry
        return entry
