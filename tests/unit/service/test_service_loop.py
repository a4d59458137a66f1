"""The shared poll loop: back-off schedule, reset on success, stop on the event, fatal errors.

Waiting is a recorded fake: nothing sleeps on the host clock.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from shardkey.chain.errors import ChainError
from shardkey.service.loop import Backoff, poll_loop, proportional_jitter

log = logging.getLogger("test.loop")


class Script:
    """A poll that fails or succeeds as scripted, then sets ``stop``."""

    def __init__(self, outcomes: str, stop: threading.Event) -> None:
        self.outcomes = list(outcomes)  # "o" succeeds, "x" raises RuntimeError, "c" ChainError
        self.stop = stop
        self.calls = 0
        self.waits: list[float] = []

    def poll(self) -> None:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if not self.outcomes:
            self.stop.set()
        if outcome == "x":
            raise RuntimeError(f"poll {self.calls} failed")
        if outcome == "c":
            raise ChainError(f"RPC http://127.0.0.1:9 failed: eth_getLogs: HTTP 429 (poll {self.calls})")

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.stop.is_set()


def run(outcomes: str, backoff: Backoff, interval: Callable[[], float] = lambda: 0.5,
        fatal: tuple[type[BaseException], ...] = ()) -> tuple[Script, int]:
    stop = threading.Event()
    script = Script(outcomes, stop)
    ok = poll_loop(script.poll, stop, interval, backoff, log, fatal=fatal, wait=script.wait)
    return script, ok


def test_failures_back_off_exponentially_up_to_the_cap_and_success_resets() -> None:
    script, ok = run("xxxxxoxxo", Backoff(base=1.0, cap=5.0))
    assert script.waits == [1.0, 2.0, 4.0, 5.0, 5.0, 0.5, 1.0, 2.0, 0.5]
    assert ok == 2


def test_jitter_is_applied_and_never_exceeds_the_cap() -> None:
    draws = iter([0.0, 0.999, 0.5])
    backoff = Backoff(base=4.0, cap=6.0, jitter=proportional_jitter(lambda: next(draws)))
    script, _ = run("xxxo", backoff)
    assert script.waits[0] == pytest.approx(2.0)       # 4 * (0.5 + 0)
    assert script.waits[1] == pytest.approx(6.0 * (0.5 + 0.4995))  # min(6, 8) jittered
    assert script.waits[2] == pytest.approx(4.5)       # cap 6 * 0.75
    assert all(w <= 6.0 for w in script.waits)


def test_failures_are_logged_at_warning_and_recovery_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="test.loop"):
        run("xxo", Backoff(base=1.0, cap=2.0))
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [("WARNING", "poll failed; retrying"), ("WARNING", "poll failed; retrying"),
                      ("INFO", "poll recovered")]
    first, second = caplog.records[:2]
    assert first.exc_info and not second.exc_info  # one traceback per failure streak
    assert first.fields == {"error": "RuntimeError", "detail": "poll 1 failed", "failures": 1,  # type: ignore[attr-defined]
                            "retry_in": 1.0}


def test_a_provider_failure_is_a_warning_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="test.loop"):
        run("cxo", Backoff(base=1.0, cap=2.0))
    first, second, recovered = caplog.records
    assert first.levelname == "WARNING" and not first.exc_info  # the message says what failed
    assert first.fields["error"] == "ChainError" and "HTTP 429" in first.fields["detail"]  # type: ignore[attr-defined]
    assert not second.exc_info and recovered.getMessage() == "poll recovered"


def test_a_set_event_stops_before_the_next_poll() -> None:
    stop = threading.Event()
    stop.set()
    calls: list[int] = []
    ok = poll_loop(lambda: calls.append(1), stop, lambda: 0.1, Backoff(1.0, 1.0), log)
    assert calls == [] and ok == 0


def test_the_interval_is_asked_after_every_success() -> None:
    intervals = iter([0.05, 0.25, 0.25])
    script, _ = run("ooo", Backoff(1.0, 1.0), interval=lambda: next(intervals))
    assert script.waits == [0.05, 0.25, 0.25]


def test_a_fatal_error_is_logged_critical_and_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Fatal(Exception):
        pass

    stop = threading.Event()

    def poll() -> None:
        raise Fatal("undecodable")

    with pytest.raises(Fatal), caplog.at_level(logging.INFO, logger="test.loop"):
        poll_loop(poll, stop, lambda: 0.1, Backoff(1.0, 1.0), log, fatal=(Fatal,),
                  wait=lambda _s: pytest.fail("no wait after a fatal error"))
    assert caplog.records[-1].levelname == "CRITICAL"


def test_real_event_wait_returns_as_soon_as_stop_is_set() -> None:
    stop = threading.Event()
    polls: list[int] = []

    def poll() -> None:
        polls.append(1)
        threading.Timer(0.01, stop.set).start()

    poll_loop(poll, stop, lambda: 60.0, Backoff(1.0, 1.0), log)  # would wait a minute without stop
    assert polls == [1]


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_backoff_refuses_a_bad_schedule(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base, cap)


def test_backoff_survives_very_long_failure_streaks() -> None:
    assert Backoff(0.25, 10.0).delay(10_000) == 10.0


# A SIGTERM arriving while the main thread holds the stop event's own lock: where Event.wait
# holds it after waking, before returning (CPython's Event keeps it as ``_cond``). A handler that
# set the event itself waited on that lock for ever; the process must still stop, and log why.
_SIGNAL_IN_WAIT = """
import logging, os, signal, sys, threading
from shardkey.service.loop import stop_on_signals
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
stop = threading.Event()
stop_on_signals(stop, logging.getLogger("service"))
with stop._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10_000):  # bytecode: the handler runs here, with the lock held
        pass
print("stopped" if stop.wait(10) else "not stopped", flush=True)
"""


def test_a_signal_while_the_main_thread_holds_the_stop_event_still_stops_it() -> None:
    run = subprocess.run([sys.executable, "-c", _SIGNAL_IN_WAIT], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["stopping", "stopped"], run.stdout
