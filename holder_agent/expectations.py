"""What a holder expects to see on chain soon, so that it polls fast only meanwhile.

Two events are announced before they are mined: a dataset's registration (owners upload
the fragment bundle last, just before they register) and a request's token (the committee
releases its shares within a block or two of an approval). Each is expected from the moment
its herald is seen until it is handled, or for ``window`` seconds at most (an owner that gave
up, a committee that refused). While anything is expected the agent polls every ``poll``
seconds instead of its configured interval: a custody confirmation or a delivery then
follows its event's confirmation within that, not a poll interval later, and an agent with
nothing to wait for pays nothing for it. Both follow the chain's block interval
(:func:`paced`): fast polls on a devnet, a provider spared on a public chain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

EXPECTING_POLL = 0.05  # seconds between polls while something is expected (the shortest)
EXPECTING_WINDOW = 5.0  # seconds an expectation lasts when nothing meets it (the shortest)
POLLS_PER_BLOCK = 10  # while something is expected, polls per block interval at most
BLOCKS_EXPECTED = 3  # blocks beyond the confirmations an expected event may take to be handled


def paced(block_interval: float, confirmations: int) -> tuple[float, float]:
    """(poll, window) for a chain of ``block_interval`` seconds per block: a tenth of a block
    between polls, never under ``EXPECTING_POLL`` (a devnet's 0.5 s blocks: 50 ms), and a
    window that outlasts the event's confirmations by ``BLOCKS_EXPECTED`` blocks, never under
    ``EXPECTING_WINDOW``. On a 12 s chain that is a poll every 1.2 s for up to a minute, where
    a flat 50 ms for 5 s asked the provider 100 times and ended before the event was deep."""
    poll = max(EXPECTING_POLL, block_interval / POLLS_PER_BLOCK)
    window = max(EXPECTING_WINDOW, (confirmations + BLOCKS_EXPECTED) * block_interval)
    return poll, window


def registration_of(dataset_id: bytes) -> tuple[str, bytes]:
    """The key of a dataset's expected registration."""
    return ("registration", dataset_id)


def token_of(request_id: int) -> tuple[str, int]:
    """The key of a request's expected token (or the release that issues it)."""
    return ("token", request_id)


class Expectations:
    """Keys of the events expected soon; thread-safe (uploads announce from the data plane)."""

    def __init__(self, window: float = EXPECTING_WINDOW, clock: Callable[[], float] = time.monotonic,
                 poll: float = EXPECTING_POLL):
        self.window = window
        self.poll = poll  # seconds between polls while anything is pending
        self._clock = clock
        self._since: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        # Set on every new expectation: the poll loop waits on it, so a poll interval that
        # began while nothing was expected is cut short (:meth:`sleep`).
        self.news = threading.Event()

    def expect(self, key: Hashable) -> None:
        """``key``'s event should come soon (its window starts again if it was expected)."""
        with self._lock:
            self._since[key] = self._clock()
        self.news.set()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or until something new is expected (or :meth:`interrupt`)."""
        self.news.wait(seconds)
        self.news.clear()

    def interrupt(self) -> None:
        """End the current :meth:`sleep` now (the agent is stopping)."""
        self.news.set()

    def met(self, key: Hashable) -> None:
        """``key``'s event was seen (nothing happens if it was not expected)."""
        with self._lock:
            self._since.pop(key, None)

    def pending(self) -> bool:
        """Whether anything is expected still within its window (expired ones are dropped)."""
        now = self._clock()
        with self._lock:
            for key in [k for k, since in self._since.items() if now - since >= self.window]:
                del self._since[key]
            return bool(self._since)
