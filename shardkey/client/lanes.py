"""Transfer lanes: every holder's requests run at once, a few per holder.

A store or fetch moves each stripe's shards to or from ``m`` holders. Waiting for one
shard's round trip before the next is asked for makes a far holder's latency the limit;
instead each holder has ``width`` lanes (threads, each with its own keep-alive connection
of the holder's :class:`~shardkey.client.transport.Transport`), so all holders transfer
at once and each has up to ``width`` requests in flight. Callers bound the stripes they
have in flight, which bounds memory; :class:`Buffers` lets them reuse the big buffers
(fresh pages cost more than the bytes copied into them).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import ParamSpec, TypeVar

from shardkey.client.transport import LANES

CALL_WEIGHT = 0.2  # weight of the latest call in the moving average of call times
P = ParamSpec("P")
T = TypeVar("T")


class Lanes:
    """``width`` worker threads per holder; :meth:`submit` queues a call on one holder's lanes,
    :meth:`backlog` says how many calls a holder has queued or running, :meth:`call_seconds`
    how long calls take."""

    def __init__(self, holders: Iterable[str], width: int = LANES):
        if width < 1:
            raise ValueError(f"lanes per holder must be >= 1, got {width}")
        self.width = width
        self._pools = {holder: ThreadPoolExecutor(max_workers=width, thread_name_prefix="lane")
                       for holder in dict.fromkeys(holders)}
        self._backlog = dict.fromkeys(self._pools, 0)
        self._call_seconds: float | None = None
        self._lock = threading.Lock()

    def submit(self, holder: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            self._backlog[holder] += 1
        future = self._pools[holder].submit(self._timed, functools.partial(fn, *args, **kwargs))
        future.add_done_callback(lambda _: self._done(holder))
        return future

    def _timed(self, call: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return call()
        finally:
            took = time.monotonic() - started
            with self._lock:
                mean = self._call_seconds
                self._call_seconds = took if mean is None else mean + CALL_WEIGHT * (took - mean)

    def _done(self, holder: str) -> None:
        with self._lock:
            self._backlog[holder] -= 1

    def call_seconds(self) -> float | None:
        """How long a call has taken on a lane lately (a moving average over every holder;
        None before the first one ended)."""
        with self._lock:
            return self._call_seconds

    def backlog(self, holder: str) -> int:
        """Calls submitted to ``holder`` and not finished yet."""
        with self._lock:
            return self._backlog[holder]

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def stripes_in_flight(stripe_bytes: int, budget: int, most: int, least: int = 2) -> int:
    """How many stripes a store or fetch keeps in flight: as many as ``budget`` bytes of
    their buffers hold, but at least ``least`` (one being worked on, one travelling) and at
    most ``most``. This, not the file size, bounds the client's memory."""
    return max(min(least, most), min(most, budget // max(1, stripe_bytes)))


class Buffers:
    """Reusable byte buffers of one size (thread-safe); as many exist as were taken at once."""

    def __init__(self, size: int):
        self.size = size
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
        return bytearray(self.size)

    def give(self, buffer: bytearray) -> None:
        with self._lock:
            self._free.append(buffer)


def results(futures: Iterable[Future[T]]) -> list[T]:
    """Every future's result in order, once all are done (so no buffer they use is still
    being read or written); the first failure is raised after that."""
    futures = list(futures)
    failure: BaseException | None = None
    out: list[T] = []
    for future in futures:
        try:
            out.append(future.result())
        except BaseException as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return out
