"""A file received into the buffer it is written from, past the page cache: a holder's
shard uploads.

A holder writes every shard once and reads it rarely, so its page-cache pages are pure
cost: on a guest VM each one must be allocated, accounted, written back and reclaimed,
and a holder that drops its pages after every upload still pays for the copy into them
(docs/PERFORMANCE.md, "Step 7"). :class:`DirectSink` gives its caller the free part of one
page-aligned staging buffer to receive into (a socket's ``recv_into``), and writes the
buffer with ``O_DIRECT`` whenever it is full: no copy from the receive buffer, no page
cache. Linux-first; where ``O_DIRECT`` is refused it writes the same bytes plainly.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from collections.abc import Callable

from shardkey.bulkio import DIRECT_ALIGN, DIRECT_BUFFER, AlignedBuffers, set_direct

PLAIN_CHUNK = 256 << 10  # bytes received per call, and staged, when writing plainly


class BoundedBuffers(AlignedBuffers):
    """An :class:`AlignedBuffers` pool that hands out at most ``limit`` buffers at once, so
    the memory of many uploads in flight stays bounded (the others write plainly)."""

    def __init__(self, size: int, keep: int, limit: int):
        super().__init__(size=size, keep=keep)
        self.limit = limit
        self._out = 0
        self._count_lock = threading.Lock()

    def try_take(self) -> mmap.mmap | None:
        """A buffer, or None when ``limit`` of them are out."""
        with self._count_lock:
            if self._out >= self.limit:
                return None
            self._out += 1
        return self.take()

    def give_back(self, buffer: mmap.mmap) -> None:
        """Return a buffer taken with :meth:`try_take`."""
        with self._count_lock:
            self._out -= 1
        self.give(buffer)


# 32 uploads in flight stage 128 MiB at most; four idle buffers stay mapped between uploads.
UPLOAD_BUFFERS = BoundedBuffers(DIRECT_BUFFER, keep=4, limit=32)
PLAIN_BUFFERS = AlignedBuffers(size=PLAIN_CHUNK, keep=16)


class DirectSink:
    """Writes a new file sequentially from its start through ``fd``: with ``O_DIRECT`` from
    a staging buffer the caller fills in place (:meth:`room`, then :meth:`commit`) or copies
    into (:meth:`write`), else plainly.

    With ``direct`` False, no staging buffer left in ``buffers``, or a file or filesystem
    that refuses ``O_DIRECT``, every byte is written as it comes, through the page cache
    (the caller's write-behind then reclaims those pages). A direct write refused for its
    alignment (``EINVAL``) switches to plain writes for the rest of the file. Other write
    errors (a full disk, ``EIO``) are raised by the call that wrote. :attr:`refused` says
    whether the file or its filesystem refused ``O_DIRECT`` (not merely no buffer left).
    :meth:`finish` writes what is staged, the last partial block plainly; :meth:`close` gives
    the buffer back and must always be called. Not durable by itself: that is the caller's
    ``fsync`` or ``syncfs``.
    """

    def __init__(self, fd: int, direct: bool = True, buffers: BoundedBuffers = UPLOAD_BUFFERS):
        self._fd = fd
        self._buffer: mmap.mmap | None = None
        self._give: Callable[[mmap.mmap], None] | None = None
        self._view: memoryview | None = None
        self._fill = 0  # bytes staged at the start of the buffer
        self.direct = False
        self.refused = False  # the file or its filesystem refused O_DIRECT
        buffer = buffers.try_take() if direct else None
        if buffer is not None and set_direct(fd, True):
            self._hold(buffer, buffers.give_back)
            self.direct = True
        elif buffer is not None:
            buffers.give_back(buffer)
            self.refused = True

    def room(self, limit: int = PLAIN_CHUNK) -> memoryview:
        """Where the next at most ``limit`` bytes go; :meth:`commit` says how many were put."""
        if self._view is None:  # writing plainly: a small reused buffer, written at each commit
            self._hold(PLAIN_BUFFERS.take(), PLAIN_BUFFERS.give)
        assert self._view is not None
        if self._fill == len(self._view):
            self._drain()
        return self._view[self._fill:self._fill + min(limit, len(self._view) - self._fill)]

    def commit(self, count: int) -> None:
        """``count`` bytes were put at the start of the last :meth:`room`."""
        self._fill += count
        if not self.direct:
            self._drain()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` (copied into the staging buffer when writing direct)."""
        view = memoryview(data).cast("B")
        if not self.direct:
            self._drain()
            _raise(_write_all(self._fd, view))
            return
        while view:
            with self.room(len(view)) as room:  # released even when the write fails (see _drain)
                taken = len(room)
                room[:] = view[:taken]
                self.commit(taken)
            view = view[taken:]

    def finish(self) -> None:
        """Write what is staged: its whole blocks direct, the rest plainly."""
        if self.direct:
            self._drain(self._fill - self._fill % DIRECT_ALIGN)
        if self.direct:
            set_direct(self._fd, False)
            self.direct = False
        self._drain()

    def close(self) -> None:
        """Give the staging buffer back (what is staged and not yet written is dropped)."""
        if self._view is not None:
            self._view.release()
        if self._buffer is not None and self._give is not None:
            self._give(self._buffer)
        self._buffer, self._give, self._view, self._fill = None, None, None, 0

    def _hold(self, buffer: mmap.mmap, give: Callable[[mmap.mmap], None]) -> None:
        self._buffer, self._give, self._view = buffer, give, memoryview(buffer)

    def _drain(self, count: int | None = None) -> None:
        """Write the first ``count`` staged bytes (all of them by default); keep the rest."""
        count = self._fill if count is None else count
        if self._view is None or not count:
            return
        # Every view of the buffer is released on the way out, an error's too: a view that
        # outlived it in a traceback would keep close() from unmapping the buffer.
        with self._view[:count] as staged:
            written, error = _write_all(self._fd, staged)
            if error is not None:
                if not self.direct or error.errno != errno.EINVAL:
                    raise error
                # Refused for its alignment (a device of larger blocks, or a short write
                # before): what is left goes plainly, and so does the rest of the file.
                set_direct(self._fd, False)
                self.direct = False
                self.refused = True
                with staged[written:] as left:
                    _raise(_write_all(self._fd, left))
        rest = self._fill - count
        if rest:
            self._view[:rest] = self._view[count:self._fill]
        self._fill = rest


def _write_all(fd: int, view: memoryview) -> tuple[int, OSError | None]:
    """Write ``view`` at the file offset: (bytes written, the error that stopped it)."""
    at = 0
    try:
        while at < len(view):
            at += os.write(fd, view[at:])
    except OSError as error:
        return at, error
    return at, None


def _raise(outcome: tuple[int, OSError | None]) -> None:
    if outcome[1] is not None:
        raise outcome[1]
