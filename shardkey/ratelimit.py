"""Per-key rate limits on chain time (pure: the clock is passed in, nothing is read).

Used where anyone may ask for work that costs a transaction: the KOS limits token
issues per requester, a holder limits fragment deliveries per requester, when the
policy is open to anyone (empty requester list). A request over the limit is
*deferred*, not dropped: the caller keeps it and asks again once :meth:`RateLimiter.admit`
says when.

A sliding window: a key may have ``limit`` distinct items admitted within any
``window`` seconds of chain time. Admitting an item already admitted inside the window
is free (a retry of the same request does not count twice). Memory is bounded by
``max_keys``: keys whose window has passed are forgotten first; beyond that the
oldest-active key is forgotten, which can only let a request through early, never
hold one back for ever.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Admission:
    """The answer for one item: served now, or not before ``retry_at`` (chain time)."""

    allowed: bool
    retry_at: int


class RateLimiter:
    """At most ``limit`` distinct items per key within ``window`` seconds (thread-safe)."""

    def __init__(self, limit: int, window: int, max_keys: int = 65_536) -> None:
        if limit < 1 or window < 1 or max_keys < 1:
            raise ValueError("limit, window and max_keys must be at least 1")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._admitted: OrderedDict[Hashable, deque[tuple[int, Hashable]]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, key: Hashable, item: Hashable, now: int) -> Admission:
        """Admit ``item`` for ``key`` at chain time ``now``, or say when it may be."""
        with self._lock:
            events = self._admitted.get(key)
            if events is None:
                events = deque()
            while events and events[0][0] + self.window <= now:
                events.popleft()
            if any(seen == item for _, seen in events):
                return Admission(True, now)
            if len(events) >= self.limit:
                self._admitted[key] = events
                return Admission(False, events[0][0] + self.window)
            events.append((now, item))
            self._admitted[key] = events
            self._admitted.move_to_end(key)
            self._trim(now)
            return Admission(True, now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._admitted)

    def _trim(self, now: int) -> None:
        if len(self._admitted) <= self.max_keys:
            return
        for key in [k for k, v in self._admitted.items() if not v or v[-1][0] + self.window <= now]:
            del self._admitted[key]
        while len(self._admitted) > self.max_keys:
            self._admitted.popitem(last=False)
