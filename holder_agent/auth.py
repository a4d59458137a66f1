"""Signed HTTP requests at the holder: chain time, header pre-checks, digest verification.

The scheme and both checks are :mod:`shardkey.httpauth`'s: :func:`precheck` runs before
a single body byte is read; uploads are streamed to disk, so :func:`verify_digest`
checks the signature given the body's SHA-256.
"""

from __future__ import annotations

import threading
import time

from shardkey.chain.connection import ChainClient
from shardkey.httpauth import precheck, verify_request_digest

__all__ = ["ChainTime", "precheck", "verify_digest"]


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


# The checks live in shardkey.httpauth (one implementation for whole and streamed bodies).
verify_digest = verify_request_digest
