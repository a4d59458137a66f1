"""Signed HTTP requests at the holder: chain time, header pre-checks, digest verification.

The scheme and its checks are :mod:`shardkey.httpauth`'s: :func:`verify_headers` checks
the signature over the declared body hash and length before a single body byte is read;
the upload path then refuses a body that differs from the declaration.
"""

from __future__ import annotations

import threading
import time

from shardkey.chain.connection import ChainClient
from shardkey.httpauth import verify_headers

__all__ = ["ChainTime", "verify_headers"]


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

