"""Chain time: the latest block, re-read when older than a bound (the one cache of it).

Policy and freshness checks use the chain's time, never the host clock; the host's
monotonic clock only decides when the cached block is too old to use. The services (KOS,
holder) judge requests with it and the client signs holder requests with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shardkey.chain.connection import ChainClient
from shardkey.chain.rpc import quantity


@dataclass(frozen=True)
class BlockHead:
    """Number and timestamp (Unix seconds) of a block seen as the latest one."""

    number: int
    timestamp: int


def head_reader(client: ChainClient) -> Callable[[], BlockHead]:
    """A function reading the latest block of ``client`` as a :class:`BlockHead`."""

    def read() -> BlockHead:
        block = client.latest_block()
        return BlockHead(int(block["number"]), int(block["timestamp"]))

    return read


class ChainTime:
    """The latest block's number and timestamp, at most ``max_age`` seconds stale.

    ``read`` fetches the latest block (one RPC round trip); ``monotonic`` is the clock that
    measures staleness (``time.monotonic`` unless a test passes another). Thread-safe:
    concurrent callers share one read.
    """

    def __init__(self, read: Callable[[], BlockHead], max_age: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self._read = read
        self._max_age = max_age
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[BlockHead, float] | None = None

    @classmethod
    def of(cls, client: ChainClient, max_age: float = 1.0) -> ChainTime:
        """Chain time of the node behind ``client``."""
        return cls(head_reader(client), max_age)

    def head(self, max_age: float | None = None) -> BlockHead:
        """The latest block as last read, re-read first when older than ``max_age`` (the
        clock's own unless given: a caller about to refuse on a stale view asks fresher)."""
        limit = self._max_age if max_age is None else max_age
        with self._lock:
            if self._cached is None or self._monotonic() - self._cached[1] > limit:
                self._cached = (self._read(), self._monotonic())
            return self._cached[0]

    def refresh(self) -> BlockHead:
        """Read the latest block now (whatever the cache's age) and cache it."""
        with self._lock:
            self._cached = (self._read(), self._monotonic())
            return self._cached[0]

    def now(self) -> int:
        """Chain time (Unix seconds of the latest block); an RPC at most once per ``max_age``."""
        return self.head().timestamp


INTERVAL_SPAN = 64  # blocks over which the block interval is estimated


def block_interval(client: ChainClient, span: int = INTERVAL_SPAN) -> float:
    """The chain's mean seconds per block over its last ``span`` blocks (two block reads);
    0.0 for a chain with no history yet. Chain timestamps are whole seconds, so over a short
    or bursty history (a devnet mining on arrival) this says "fast", not how fast."""
    head = client.latest_block()
    number, stamp = int(head["number"]), int(head["timestamp"])
    first = max(0, number - span)
    if first == number:
        return 0.0
    old = client.raw("eth_getBlockByNumber", [hex(first), False])
    if old is None:  # gone meanwhile (a reorg): no estimate this time
        return 0.0
    return max(0.0, (stamp - quantity(old["timestamp"])) / (number - first))
