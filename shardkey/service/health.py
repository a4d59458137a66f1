"""The one health rule of the chain-watching services (holder agent and KOS).

A service is healthy while its watcher keeps up with the chain: it has polled the chain
successfully at least once since it started (until then it is "starting"), its last poll
is at most ``max_poll_age`` seconds old (host monotonic clock: this measures the process,
not policy time), and its cursor is at most ``max_lag_blocks`` blocks behind the newest
block it may act on (the head minus the confirmation depth). Either failing makes
``/v1/health`` (holder) and ``/health`` (KOS metrics port) answer 503 with the reason.
Pure: the caller passes the times and block numbers in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from shardkey.chain.errors import ChainError

DEFAULT_MAX_POLL_AGE = 60.0
DEFAULT_MAX_LAG_BLOCKS = 50


@dataclass(frozen=True)
class HealthVerdict:
    """Whether the watcher keeps up, and why not when it does not."""

    healthy: bool
    reason: str | None
    lag_blocks: int
    seconds_since_poll: float | None

    def as_json(self) -> dict[str, object]:
        """The fields of a health answer (status ``ok`` or ``unhealthy`` plus the figures)."""
        age = None if self.seconds_since_poll is None else round(self.seconds_since_poll, 3)
        return {"status": "ok" if self.healthy else "unhealthy", "reason": self.reason,
                "lag_blocks": self.lag_blocks, "seconds_since_poll": age}


def watcher_lag(head: int, confirmations: int, cursor_block: int) -> int:
    """Blocks between the cursor and the newest block deep enough to act on (never negative)."""
    return max(0, head - confirmations - cursor_block)


class WatchHealth:
    """Records successful polls; judges them against the thresholds (thread-safe)."""

    def __init__(self, max_poll_age: float = DEFAULT_MAX_POLL_AGE,
                 max_lag_blocks: int = DEFAULT_MAX_LAG_BLOCKS) -> None:
        if max_poll_age <= 0 or max_lag_blocks < 0:
            raise ValueError(f"health thresholds must be positive, got max_poll_age={max_poll_age} "
                             f"max_lag_blocks={max_lag_blocks}")
        self.max_poll_age = max_poll_age
        self.max_lag_blocks = max_lag_blocks
        self._lock = threading.Lock()
        self._last_ok: float | None = None
        self._started: float | None = None

    def started(self, now: float) -> None:
        """The watcher began at monotonic time ``now`` (the poll-age clock starts here)."""
        with self._lock:
            self._started = now

    def poll_succeeded(self, now: float) -> None:
        """A poll completed at monotonic time ``now``."""
        with self._lock:
            self._last_ok = now

    def verdict(self, now: float, head: int, confirmations: int, cursor_block: int) -> HealthVerdict:
        """Judge the watcher at monotonic time ``now`` given the chain head and its cursor."""
        with self._lock:
            last_ok, started = self._last_ok, self._started
        lag = watcher_lag(head, confirmations, cursor_block)
        if last_ok is None:
            if started is not None and now - started > self.max_poll_age:
                return HealthVerdict(False, f"no successful chain poll in the {now - started:.0f} s "
                                     f"since start (limit {self.max_poll_age:.0f} s)", lag, None)
            return HealthVerdict(False, "starting: no poll yet", lag, None)
        since = now - last_ok
        if since > self.max_poll_age:
            return HealthVerdict(False, f"last successful chain poll {since:.0f} s ago "
                                 f"(limit {self.max_poll_age:.0f} s)", lag, since)
        if lag > self.max_lag_blocks:
            return HealthVerdict(False, f"watcher {lag} blocks behind the chain head "
                                 f"(limit {self.max_lag_blocks})", lag, since)
        return HealthVerdict(True, None, lag, since)


def judge(health: WatchHealth, read_head: Callable[[], int], confirmations: int,
          cursor_block: int, now: float) -> HealthVerdict:
    """:meth:`WatchHealth.verdict` against the head ``read_head`` returns now; a chain that
    cannot be read is itself unhealthy (the reason says so, without the RPC URL)."""
    try:
        head = read_head()
    except ChainError as exc:
        return HealthVerdict(False, f"the chain cannot be read: {type(exc).__name__}", 0, None)
    return health.verdict(now, head, confirmations, cursor_block)
