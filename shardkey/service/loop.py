"""The services' poll loop: poll, wait, repeat; back off exponentially while polls fail.

Time never comes from the host clock here except through ``wait`` (``stop.wait`` unless a
test passes another), so the loop is tested without sleeping.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from shardkey.chain.errors import ChainError


def proportional_jitter(uniform: Callable[[], float]) -> Callable[[float], float]:
    """Jitter keeping between half and all of a delay; ``uniform`` returns a float in [0, 1).

    Replicas and holders that fail together (the RPC went away) then retry spread out
    instead of in step.
    """
    return lambda delay: delay * (0.5 + 0.5 * uniform())


def no_jitter(delay: float) -> float:
    """The delay unchanged (tests, and callers that want a fixed schedule)."""
    return delay


@dataclass(frozen=True)
class Backoff:
    """Delay after the ``n``-th consecutive failure: ``min(cap, base * 2**(n-1))``, jittered."""

    base: float
    cap: float
    jitter: Callable[[float], float] = no_jitter

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (>= 1) polls failed in a row."""
        exponent = min(max(failures, 1) - 1, 62)  # 2**62 * base is past any cap
        return min(self.cap, self.jitter(min(self.cap, self.base * 2.0**exponent)))


def poll_loop(poll: Callable[[], object], stop: threading.Event, interval: Callable[[], float],
              backoff: Backoff, logger: logging.Logger, *, what: str = "poll",
              fatal: tuple[type[BaseException], ...] = (),
              wait: Callable[[float], object] | None = None) -> int:
    """Call ``poll`` until ``stop`` is set; return the number of polls that succeeded.

    After a success the loop waits ``interval()`` seconds; after a failure it logs a WARNING
    (error type and message, the failure count, the delay; the traceback for the first
    failure of a streak, except for a :class:`ChainError`: the node or provider failed, and
    the message says how) and waits ``backoff.delay(failures)``. A success resets the count.
    Exceptions of a ``fatal`` type are logged as CRITICAL and re-raised: the service stops.
    ``wait`` sleeps until a timeout or ``stop`` (default ``stop.wait``).
    """
    sleep = wait if wait is not None else stop.wait
    failures = 0
    succeeded = 0
    while not stop.is_set():
        try:
            poll()
        except fatal as exc:
            logger.critical(f"{what} failed with a fatal error; stopping", extra={"fields": {
                "error": type(exc).__name__, "detail": str(exc)}})
            raise
        except Exception as exc:
            failures += 1
            delay = backoff.delay(failures)
            traceback = failures == 1 and not isinstance(exc, ChainError)  # a provider's hiccup: none
            logger.warning(f"{what} failed; retrying", exc_info=traceback, extra={"fields": {
                "error": type(exc).__name__, "detail": str(exc), "failures": failures,
                "retry_in": round(delay, 3)}})
            sleep(delay)
            continue
        if failures:
            logger.info(f"{what} recovered", extra={"fields": {"failures": failures}})
        failures = 0
        succeeded += 1
        sleep(interval())
    return succeeded


def stop_on_signals(stop: threading.Event, logger: logging.Logger) -> None:
    """Set ``stop`` on SIGTERM or SIGINT (logged): the loop ends after the work under way.

    The handler itself only writes the signal's number to a pipe; a thread reads it, logs and
    sets ``stop``. A Python signal handler runs in the main thread between two bytecodes, and
    the main thread spends its time in ``stop.wait()``: a handler that set ``stop`` itself could
    run while that thread held the event's own (non-reentrant) lock, between waking and
    returning, and then wait on it for ever (a KOS member that never stopped on SIGTERM).
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def relay() -> None:
        while data := os.read(read_fd, 1):
            logger.info("stopping", extra={"fields": {"signal": signal.Signals(data[0]).name}})
            stop.set()

    threading.Thread(target=relay, name="signals", daemon=True).start()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(BlockingIOError):  # the pipe full of signals: one is enough
            os.write(write_fd, bytes([signum]))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
