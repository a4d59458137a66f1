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

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import ParamSpec, TypeVar

from shardkey.client.transport import LANES

P = ParamSpec("P")
T = TypeVar("T")


class Lanes:
    """``width`` worker threads per holder; :meth:`submit` queues a call on one holder's lanes."""

    def __init__(self, holders: Iterable[str], width: int = LANES):
        if width < 1:
            raise ValueError(f"lanes per holder must be >= 1, got {width}")
        self._pools = {holder: ThreadPoolExecutor(max_workers=width, thread_name_prefix="lane")
                       for holder in dict.fromkeys(holders)}

    def submit(self, holder: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._pools[holder].submit(fn, *args, **kwargs)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


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
