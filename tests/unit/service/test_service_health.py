"""The one health rule of the services (pure: times and blocks passed in)."""

from __future__ import annotations

import pytest

from shardkey.chain.errors import ChainError
from shardkey.service.health import WatchHealth, judge, watcher_lag


def test_lag_counts_from_the_newest_block_deep_enough_to_act_on() -> None:
    assert watcher_lag(head=100, confirmations=12, cursor_block=88) == 0
    assert watcher_lag(head=100, confirmations=12, cursor_block=80) == 8
    assert watcher_lag(head=5, confirmations=12, cursor_block=0) == 0


def test_healthy_within_both_limits() -> None:
    health = WatchHealth(max_poll_age=10, max_lag_blocks=5)
    health.started(0.0)
    health.poll_succeeded(1.0)
    verdict = health.verdict(5.0, head=20, confirmations=1, cursor_block=15)
    assert verdict.healthy and verdict.reason is None and verdict.lag_blocks == 4


def test_a_stale_last_poll_is_unhealthy() -> None:
    health = WatchHealth(max_poll_age=10, max_lag_blocks=5)
    health.poll_succeeded(1.0)
    verdict = health.verdict(12.5, head=20, confirmations=1, cursor_block=19)
    assert not verdict.healthy and verdict.reason == "last successful chain poll 12 s ago (limit 10 s)"


def test_unhealthy_until_the_first_good_poll() -> None:
    health = WatchHealth(max_poll_age=60, max_lag_blocks=5)
    assert health.verdict(0.0, head=1, confirmations=1, cursor_block=0).reason == "starting: no poll yet"
    health.started(0.0)
    verdict = health.verdict(9.0, head=1, confirmations=1, cursor_block=0)
    assert not verdict.healthy and verdict.reason == "starting: no poll yet"
    assert verdict.as_json()["status"] == "unhealthy"
    health.poll_succeeded(9.5)
    assert health.verdict(10.0, head=1, confirmations=1, cursor_block=0).healthy


def test_no_poll_since_start_says_for_how_long_after_the_limit() -> None:
    health = WatchHealth(max_poll_age=10, max_lag_blocks=5)
    health.started(0.0)
    verdict = health.verdict(11.0, head=1, confirmations=1, cursor_block=0)
    assert not verdict.healthy and "since start" in str(verdict.reason)


def test_a_lagging_cursor_is_unhealthy() -> None:
    health = WatchHealth(max_poll_age=10, max_lag_blocks=5)
    health.poll_succeeded(1.0)
    verdict = health.verdict(2.0, head=40, confirmations=2, cursor_block=30)
    assert not verdict.healthy and verdict.reason == "watcher 8 blocks behind the chain head (limit 5)"
    assert verdict.as_json()["status"] == "unhealthy"


def test_an_unreadable_chain_is_unhealthy_without_the_rpc_url() -> None:
    def head() -> int:
        raise ChainError("RPC https://key@provider.example failed: eth_blockNumber: timed out")

    verdict = judge(WatchHealth(), head, 1, 0, 0.0)
    assert not verdict.healthy and verdict.reason == "the chain cannot be read: ChainError"


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        WatchHealth(max_poll_age=0)
