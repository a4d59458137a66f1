"""Atomic, durable file writes: never a half-written file, never a world-readable secret.
Also the Linux writeback calls (``sync_file_range``, ``syncfs``, ``posix_fadvise``) that the
holder's store and the client's large files use (through :mod:`shardkey.bulkio`), each best
effort where the platform lacks them."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

# <linux/fs.h> sync_file_range flags
SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE, SYNC_FILE_RANGE_WAIT_AFTER = 1, 2, 4


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o600, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Yield a file to write; on success it replaces ``path`` atomically and durably.

    The data goes to a temporary file beside ``path`` (created with ``mode``), is
    fsynced, then renamed over ``path``. On any exception the temporary file is removed
    and ``path`` is untouched. ``durable=False`` skips the fsyncs (still atomic: a reader
    sees the old or the new file, never half of one) for files that may be lost in a
    power cut, such as a heartbeat.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (and durably unless ``durable=False``)."""
    with atomic_writer(path, mode, durable=durable) as handle:
        handle.write(data)


@functools.cache
def libc_handle() -> ctypes.CDLL | None:
    """The C library, loaded once (None where it cannot be found)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


@functools.cache
def _sync_file_range() -> Any:
    libc = libc_handle()
    function = getattr(libc, "sync_file_range", None) if libc is not None else None
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP})


def sync_file_range(fd: int, offset: int, length: int, flags: int) -> bool:
    """Linux ``sync_file_range``; False where it does not exist (or the file's filesystem
    does not take it). Raises :class:`OSError`
    when writeback failed: waiting on a range consumes the error, so a later ``fsync`` of
    the same file would not see it again."""
    function = _sync_file_range()
    if function is None:
        return False
    if int(function(fd, offset, length, flags)) != 0:
        code = ctypes.get_errno()
        if code in _UNSUPPORTED:  # this file or filesystem has no such call: as if absent
            return False
        raise OSError(code, f"sync_file_range: {os.strerror(code)}")
    return True


def start_writeback(fd: int) -> None:
    """Have the kernel start writing a file's dirty pages to disk now, without waiting.
    Best effort (an error is left for the ``fsync`` that makes the file durable)."""
    with contextlib.suppress(OSError):
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)


def write_behind(fd: int) -> None:
    """Write a file's dirty pages to disk, wait for them, then drop its pages from the page
    cache (:func:`drop_cached`). Not a durability barrier (no device flush, no metadata):
    that is still ``fsync`` or ``syncfs``. Raises :class:`OSError` when writeback failed
    (``ENOSPC`` of a delayed allocation, ``EIO``); a plain no-op where
    ``sync_file_range`` does not exist."""
    if sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                       | SYNC_FILE_RANGE_WAIT_AFTER):
        drop_cached(fd)


def drop_cached(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to drop a file's clean pages (``length`` 0: to the end) from the page
    cache (``POSIX_FADV_DONTNEED``). Best effort: dirty pages stay, and so does any page
    where the platform has no ``posix_fadvise``."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def syncfs(path: Path) -> bool:
    """``syncfs`` of the filesystem holding ``path``: True when it ran and succeeded."""
    libc = libc_handle()
    if libc is None or not hasattr(libc, "syncfs"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return int(libc.syncfs(fd)) == 0
    finally:
        os.close(fd)
