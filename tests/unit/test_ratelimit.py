"""The per-key sliding-window rate limiter (pure: chain time passed in)."""

from __future__ import annotations

import pytest

from shardkey.ratelimit import Admission, RateLimiter


def test_limit_per_key_within_a_sliding_window() -> None:
    limiter = RateLimiter(limit=2, window=100)
    assert limiter.admit("alice", 1, 1000) == Admission(True, 1000)
    assert limiter.admit("alice", 2, 1050) == Admission(True, 1050)
    assert limiter.admit("alice", 3, 1060) == Admission(False, 1100)  # when the first leaves
    assert limiter.admit("bob", 4, 1060).allowed  # another key, its own allowance
    assert limiter.admit("alice", 1, 1070).allowed  # an item already admitted is free
    assert not limiter.admit("alice", 3, 1099).allowed
    assert limiter.admit("alice", 3, 1100) == Admission(True, 1100)
    assert limiter.admit("alice", 5, 1120) == Admission(False, 1150)


def test_a_clock_that_stands_still_keeps_the_limit() -> None:
    limiter = RateLimiter(limit=1, window=10)
    assert limiter.admit("a", 1, 500).allowed
    assert all(not limiter.admit("a", n, 500).allowed for n in range(2, 50))


def test_memory_is_bounded_by_max_keys() -> None:
    limiter = RateLimiter(limit=1, window=10, max_keys=3)
    for key in range(10):
        assert limiter.admit(key, key, 0).allowed
    assert len(limiter) == 3
    assert not limiter.admit(9, "other", 0).allowed  # the newest keys are kept


def test_bad_parameters_are_refused() -> None:
    for args in ((0, 1), (1, 0)):
        with pytest.raises(ValueError):
            RateLimiter(*args)
