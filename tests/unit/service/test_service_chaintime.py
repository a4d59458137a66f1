"""The shared chain-time cache: bounded staleness measured on a clock passed in."""

from __future__ import annotations

import threading

import pytest

from shardkey.chain.chaintime import BlockHead, ChainTime


class FakeChain:
    """Counts reads; block ``n`` has timestamp ``1_000 + 12 n``."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self) -> BlockHead:
        self.reads += 1
        return BlockHead(self.reads, 1_000 + 12 * self.reads)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_reads_once_then_serves_the_cache_until_max_age_passes() -> None:
    chain, clock = FakeChain(), Clock()
    time = ChainTime(chain.read, max_age=1.0, monotonic=clock)
    assert time.now() == 1_012
    clock.t += 1.0  # exactly max_age: still fresh enough
    assert time.now() == 1_012 and chain.reads == 1
    clock.t += 0.001
    assert time.now() == 1_024 and chain.reads == 2
    assert time.head() == BlockHead(2, 1_024)


def test_refresh_reads_whatever_the_age() -> None:
    chain, clock = FakeChain(), Clock()
    time = ChainTime(chain.read, max_age=60.0, monotonic=clock)
    time.now()
    assert time.refresh() == BlockHead(2, 1_024)
    assert time.now() == 1_024 and chain.reads == 2


def test_max_age_zero_reads_every_time_the_clock_moves() -> None:
    chain, clock = FakeChain(), Clock()
    time = ChainTime(chain.read, max_age=0.0, monotonic=clock)
    time.now()
    clock.t += 0.001
    time.now()
    assert chain.reads == 2


def test_concurrent_callers_share_one_read() -> None:
    chain, clock = FakeChain(), Clock()
    time = ChainTime(chain.read, max_age=5.0, monotonic=clock)
    threads = [threading.Thread(target=time.now) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert chain.reads == 1


def test_a_failed_read_is_not_cached() -> None:
    calls = []

    def flaky() -> BlockHead:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("node down")
        return BlockHead(7, 7_000)

    time = ChainTime(flaky, max_age=5.0, monotonic=Clock())
    with pytest.raises(ConnectionError):
        time.now()
    assert time.now() == 7_000


def test_negative_max_age_is_refused() -> None:
    with pytest.raises(ValueError, match="max_age"):
        ChainTime(FakeChain().read, max_age=-1.0)
