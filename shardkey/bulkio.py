"""Large sequential reads and writes that spare the page cache: a store's source file and a
fetch's output (a holder's shard bodies use :func:`shardkey.fsutil.write_behind`).

On a guest VM every page the guest has not touched lately costs far more than the bytes
copied into it, and a restore or a store of a large file should not push the user's working
set out of memory (docs/PERFORMANCE.md, steps 5 and 6). Linux-first; each class is a plain
reader or writer where the platform lacks the calls it uses.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import io
import mmap
import os
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from shardkey.fsutil import (
    SYNC_FILE_RANGE_WAIT_AFTER,
    SYNC_FILE_RANGE_WAIT_BEFORE,
    SYNC_FILE_RANGE_WRITE,
    drop_cached,
    libc_handle,
    sync_file_range,
)

RECYCLE_WINDOW = 16 << 20  # bytes a PageRecycler lets pile up before it writes them back
# O_DIRECT wants file offsets, lengths and buffer addresses aligned to the device's logical
# block; 4096 covers devices of 512- and 4096-byte blocks.
DIRECT_ALIGN = 4096
DIRECT_BUFFER = 4 << 20  # bytes a DirectWriter stages before each write (1 MiB measured slower)


class PageRecycler:
    """Writes a large sequential output through ``handle`` and hands its page-cache pages
    back as soon as they are on disk, so the next writes reuse them.

    Every :data:`RECYCLE_WINDOW` bytes it starts writeback of the window just written,
    waits for the one before it, and drops that one from the page cache. A guest VM pays
    for every page it has not touched lately (docs/PERFORMANCE.md "Step 5": writing 4 GiB
    cost 7.3 CPU seconds into fresh pages, 2.5 recycling 16 MiB windows), and a restore of a
    large file should not push the user's working set out of memory. The file is not
    durable until its ``fsync``; where ``sync_file_range`` does not exist this is a plain
    writer.
    """

    def __init__(self, handle: BinaryIO, window: int = RECYCLE_WINDOW, start: int = 0):
        self.handle, self.window = handle, window
        self._written = start  # file offset of the next write
        self._marked = start  # end of the last window handed to writeback
        self._previous: tuple[int, int] | None = None  # that window, not yet dropped

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data``; returns its length."""
        self.handle.write(data)
        self._written += len(data)
        if self._written - self._marked >= self.window:
            self._recycle()
        return len(data)

    def _recycle(self) -> None:
        self.handle.flush()
        fd = self.handle.fileno()
        start, end = self._marked, self._written - self._written % mmap.PAGESIZE  # whole pages
        if not sync_file_range(fd, start, end - start, SYNC_FILE_RANGE_WRITE):
            self.window = 1 << 62  # no sync_file_range here: write plainly from now on
            return
        if self._previous is not None:
            before, after = self._previous
            sync_file_range(fd, before, after - before, SYNC_FILE_RANGE_WAIT_BEFORE
                            | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER)
            drop_cached(fd, before, after - before)
        self._previous, self._marked = (start, end), end


class AlignedBuffers:
    """A free list of page-aligned staging buffers (anonymous ``mmap``) of ``size`` bytes,
    at most ``keep`` of them kept for reuse. Thread-safe. Reused because a guest VM pays for
    every fresh page it touches (as it does for fresh page-cache pages)."""

    def __init__(self, size: int = DIRECT_BUFFER, keep: int = 4):
        if size <= 0 or size % DIRECT_ALIGN:
            raise ValueError(f"buffer size {size} is not a positive multiple of {DIRECT_ALIGN}")
        self.size, self.keep = size, keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        """A buffer: a kept one if any, else a new one."""
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, self.size)

    def prefill(self) -> int:
        """Map the ``keep`` buffers kept for reuse now, their pages touched; returns how many
        were added. A long-lived service calls this at its start, so that its first large
        transfers do not pay for the fresh pages (the first 4 MiB upload into a new buffer
        faulted 1,024 pages, and on a guest VM fresh pages cost 2.3 s per GiB)."""
        with self._lock:
            missing = max(0, self.keep - len(self._free))
        fresh = [_populated(self.size) for _ in range(missing)]
        with self._lock:
            room = max(0, self.keep - len(self._free))
            self._free.extend(fresh[:room])
        for extra in fresh[room:]:  # taken and given back meanwhile: the pool is full
            extra.close()
        return min(room, len(fresh))

    def give(self, buffer: mmap.mmap) -> None:
        """Return a buffer taken from this pool; beyond ``keep`` it is unmapped (once no view
        of it is left: one held by an error's traceback must not turn a failed write into a
        ``BufferError``)."""
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(buffer)
                return
        try:
            buffer.close()
        except BufferError:
            pass  # a view is still alive: the mapping goes when the last reference does


def _populated(size: int) -> mmap.mmap:
    """An anonymous shared mapping of ``size`` bytes with every page present."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | populate)
    if not populate:  # no MAP_POPULATE here: fault the pages in by writing one byte of each
        for offset in range(0, size, mmap.PAGESIZE):
            buffer[offset] = 0
    return buffer


_SHARED_BUFFERS = AlignedBuffers()


def set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; False where the file or filesystem refuses."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | os.O_DIRECT) if on else (flags & ~os.O_DIRECT))
    except (OSError, AttributeError):  # AttributeError: no O_DIRECT on this platform
        return False
    return True


class DirectWriter:
    """Writes a large sequential output through ``handle``'s file with ``O_DIRECT``, past
    the page cache; :meth:`finish` writes the last partial block buffered.

    The data is copied into one of two reused, page-aligned buffers of ``buffers``; a
    thread writes a full one straight to the device in whole blocks while the caller fills
    the other. Through the page cache the same bytes cost a guest VM a page the kernel must
    allocate, account, write back and reclaim (docs/PERFORMANCE.md "Step 6": a 1 GiB
    restore's CPU 2.68 -> 2.32 s, its system CPU 1.1 -> 0.7 s, against :class:`PageRecycler`),
    and a restore leaves the user's working set in memory. A write error (a full disk, ``EIO``) is raised
    by the next :meth:`write` or :meth:`finish`, not left to a later ``fsync``. Not durable
    by itself: the file's size and the device cache still need the caller's ``fsync``.

    Where ``O_DIRECT`` is not to be had (not a regular file, a filesystem that refuses it,
    a handle not at a block boundary, a write refused for its alignment) it writes through
    ``handle`` with a :class:`PageRecycler` instead, and :attr:`direct` is False. ``handle``
    must not be written to other than through this writer until :meth:`finish`; call
    :meth:`close` when giving up on the output.
    """

    def __init__(self, handle: BinaryIO, *, buffers: AlignedBuffers | None = None):
        handle.flush()
        self.handle = handle
        self._fd = handle.fileno()
        self._buffers = buffers or _SHARED_BUFFERS
        self._staging: list[mmap.mmap] = []  # the buffer being filled, then the other one
        self._fill = 0
        self._sink: PageRecycler | None = None
        self._io: ThreadPoolExecutor | None = None
        self._inflight: tuple[Future[tuple[int, OSError | None]], memoryview] | None = None
        regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        self._position = handle.tell() if regular else 0  # file offset of the next byte
        self.direct = regular and self._position % DIRECT_ALIGN == 0 and set_direct(self._fd, True)
        if not self.direct:
            self._fall_back()
            return
        self._staging = [self._buffers.take(), self._buffers.take()]
        self._views = [memoryview(b) for b in self._staging]
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="direct-writer")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data``; returns its length."""
        if self._sink is not None:
            return self._sink.write(data)
        if not self._staging:
            raise ValueError("write to a finished DirectWriter")
        view = memoryview(data).cast("B")
        at = 0
        while at < len(view):
            current = self._views[0]
            take = min(len(current) - self._fill, len(view) - at)
            current[self._fill:self._fill + take] = view[at:at + take]
            self._fill += take
            at += take
            if self._fill == len(current):
                self._full()
                if self._sink is not None:  # fell back: the rest goes through handle
                    self._sink.write(view[at:])
                    break
        return len(view)

    def finish(self) -> None:
        """Write what is staged: whole blocks direct, the last partial one buffered; then
        ``handle`` is positioned after the last byte, ready for its flush and ``fsync``.
        Raises the error of any write not yet reported (a full disk, ``EIO``)."""
        try:
            self._settle()
            if self._staging:
                if self._sink is None:
                    self._write_staged()
                else:
                    self._sink.write(self._views[0][:self._fill])
        finally:
            self._fill = 0
            self.close()

    def close(self) -> None:
        """Wait for a write in flight and give the staging buffers back (what is staged and
        not yet written is dropped). Harmless once finished."""
        if self._inflight is not None:
            future, self._inflight = self._inflight[0], None
            future.exception()  # waited for; its error, if any, is the failure being cleaned up
        if self._io is not None:
            self._io.shutdown()
            self._io = None
        if self._staging:
            for view in self._views:
                view.release()  # before the buffers go back: an unmapped one must have no view
            for buffer in self._staging:
                self._buffers.give(buffer)
            self._staging = []

    def _full(self) -> None:
        """The buffer being filled is full: once the previous write is done, hand this one
        to the writing thread and fill the other."""
        self._fill = 0
        self._settle()
        view = self._views[0]
        if self._sink is not None:  # the previous write fell back: this one goes the same way
            self._sink.write(view)
            return
        assert self._io is not None
        self._inflight = (self._io.submit(self._write_direct, view), view)
        self._staging.reverse()
        self._views.reverse()

    def _settle(self) -> None:
        if self._inflight is not None:
            (future, view), self._inflight = self._inflight, None
            self._account(view, *future.result())

    def _write_staged(self) -> None:
        staged = self._views[0][:self._fill]
        whole = self._fill - self._fill % DIRECT_ALIGN
        if whole:
            self._account(staged, *self._write_direct(staged[:whole]))
        if self._sink is not None:  # that write fell back and wrote the rest, tail included
            return
        tail = staged[whole:]
        set_direct(self._fd, False)  # the tail is written buffered: O_DIRECT wants whole blocks
        while tail:
            written = os.write(self._fd, tail)
            self._position += written
            tail = tail[written:]
        self.handle.seek(self._position)  # the handle's idea of its position, resynced

    def _write_direct(self, view: memoryview) -> tuple[int, OSError | None]:
        """Write ``view`` at the file offset: (bytes written, the error that stopped it)."""
        at = 0
        try:
            while at < len(view):
                at += os.write(self._fd, view[at:])
        except OSError as error:
            return at, error
        return at, None

    def _account(self, view: memoryview, written: int, error: OSError | None) -> None:
        """Count a write of ``view``; where its alignment was refused (``EINVAL``), fall
        back and write the rest of ``view`` through the page cache."""
        self._position += written
        if error is None:
            return
        if error.errno != errno.EINVAL:
            raise error
        self._fall_back()
        assert self._sink is not None
        self._sink.write(view[written:])

    def _fall_back(self) -> None:
        if self.direct:  # direct writes moved the file offset past handle's idea of it
            set_direct(self._fd, False)
            self.handle.seek(self._position)
        self.direct = False
        self._sink = PageRecycler(self.handle, start=self._position)


@functools.cache
def _mincore() -> Any:
    libc = libc_handle()
    function = getattr(libc, "mincore", None) if libc is not None else None
    if function is not None:
        function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    return function


def resident(fd: int, offset: int, length: int) -> bytes | None:
    """Which pages of the file ``fd`` from ``offset`` (a multiple of the page size), ``length``
    bytes long, are in the page cache: one byte per page, 1 or 0 (``mincore`` of a private
    mapping, which reads nothing). None where the platform cannot tell."""
    function = _mincore()
    if function is None or length <= 0:
        return None
    try:
        mapping = mmap.mmap(fd, length, offset=offset, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None
    vector = ctypes.create_string_buffer(-(-length // mmap.PAGESIZE))
    anchor = ctypes.c_char.from_buffer(mapping)
    try:
        if int(function(ctypes.addressof(anchor), length, vector)) != 0:
            return None
        return vector.raw.translate(_LOW_BIT)
    finally:
        del anchor
        mapping.close()


_LOW_BIT = bytes(i & 1 for i in range(256))  # mincore's other bits are reserved


class DropBehindReader:
    """Reads a large file sequentially and leaves the page cache as it found it: the pages
    a read brought in are dropped as soon as they have been read, those that were cached
    before stay.

    A store of a file that is not cached would otherwise fill memory with it, and on a guest
    VM every fresh page costs more than the bytes read into it (docs/PERFORMANCE.md
    "Step 6": a cold 1 GiB read cost 2.2 system CPU seconds, 0.14 dropping behind; a cold
    1 GiB store's client CPU 4.29 -> 3.41 s). Which
    pages were cached is sampled :data:`AHEAD` bytes before the reads reach them, so the
    kernel's own readahead is not mistaken for the user's cache. Where ``mincore`` or
    ``posix_fadvise`` is missing this is a plain reader.
    """

    AHEAD = 32 << 20

    def __init__(self, source: io.RawIOBase):
        self.source = source
        self._fd = source.fileno()
        status = os.fstat(self._fd)
        regular = stat.S_ISREG(status.st_mode)
        position = source.tell() if regular else 0  # a pipe has no position
        self._position = position
        self._base = position - position % mmap.PAGESIZE  # file offset of _cached[0]
        self._cached = bytearray()  # per page from _base: 1 when it was cached before we read
        self._size = status.st_size
        self._active = (regular and hasattr(os, "posix_fadvise")
                        and resident(self._fd, self._base, mmap.PAGESIZE) is not None)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into ``buffer`` as the file's ``readinto`` does; the bytes read."""
        if self._active:
            self._sample(self._position + len(buffer) + self.AHEAD)
        got = self.source.readinto(buffer) or 0
        self._position += got
        if self._active:  # the whole pages read, and at the end of the file its last one too
            page = mmap.PAGESIZE
            end = self._position - self._position % page
            self._drop_behind(-(-self._position // page) * page if self._position >= self._size else end)
        return got

    def _sample(self, until: int) -> None:
        start = self._base + len(self._cached) * mmap.PAGESIZE
        until = min(until, self._size)
        if start >= until:
            return
        pages = resident(self._fd, start, until - start)
        if pages is None:  # the file shrank, or a mapping was refused: just read
            self._active = False
            return
        self._cached += pages

    def _drop_behind(self, end: int) -> None:
        count = min((end - self._base) // mmap.PAGESIZE, len(self._cached))
        if count <= 0:
            return
        head = bytes(self._cached[:count])
        at = head.find(0)
        while at >= 0:
            stop = head.find(1, at)
            stop = count if stop < 0 else stop
            drop_cached(self._fd, self._base + at * mmap.PAGESIZE, (stop - at) * mmap.PAGESIZE)
            at = head.find(0, stop)
        del self._cached[:count]
        self._base += count * mmap.PAGESIZE
