"""Transfer lanes: calls per holder run at most ``width`` at once, the backlog counts what
is queued or running, and the call time is a moving average of calls that ended."""

from __future__ import annotations

import threading
import time

from shardkey.client.lanes import Lanes, stripes_in_flight


def test_backlog_counts_queued_and_running_calls_until_they_end() -> None:
    release = threading.Event()
    running = threading.Semaphore(0)

    def held() -> int:
        running.release()
        release.wait(10)
        return 1

    with Lanes(["a", "b"], width=2) as lanes:
        futures = [lanes.submit("a", held) for _ in range(5)]
        assert running.acquire(timeout=10) and running.acquire(timeout=10)
        assert not running.acquire(timeout=0.2)  # two lanes: the other three wait
        assert (lanes.backlog("a"), lanes.backlog("b")) == (5, 0)
        release.set()
        assert [f.result(10) for f in futures] == [1] * 5
        deadline = time.monotonic() + 10
        while lanes.backlog("a") and time.monotonic() < deadline:  # done callbacks run last
            time.sleep(0.01)
        assert lanes.backlog("a") == 0


def test_call_seconds_follow_the_calls_that_ended() -> None:
    with Lanes(["a"], width=1) as lanes:
        assert lanes.call_seconds() is None
        lanes.submit("a", time.sleep, 0.2).result(10)
        first = lanes.call_seconds()
        assert first is not None and 0.2 <= first < 1.0
        for _ in range(30):
            lanes.submit("a", lambda: None).result(10)
        later = lanes.call_seconds()
        assert later is not None and later < 0.01  # quick calls pulled the average down


def test_a_failing_call_still_ends_its_backlog_and_raises() -> None:
    def boom() -> None:
        raise ValueError("no")

    with Lanes(["a"], width=1) as lanes:
        future = lanes.submit("a", boom)
        try:
            future.result(10)
        except ValueError as exc:
            assert str(exc) == "no"
        else:
            raise AssertionError("the call's error was lost")
        deadline = time.monotonic() + 10
        while lanes.backlog("a") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lanes.backlog("a") == 0 and lanes.call_seconds() is not None


def test_stripes_in_flight_are_bounded_by_the_buffer_budget_within_least_and_most() -> None:
    mib = 1 << 20
    assert stripes_in_flight(8 * mib, 100 * mib, most=6) == 6  # 12 fit: capped at most
    assert stripes_in_flight(32 * mib, 100 * mib, most=6) == 3  # 4 MiB shards: 3 fit
    assert stripes_in_flight(400 * mib, 100 * mib, most=6) == 2  # none fit: still two
    assert stripes_in_flight(400 * mib, 100 * mib, most=1) == 1  # a caller asking for one gets one
    assert stripes_in_flight(0, 100 * mib, most=12) == 12
