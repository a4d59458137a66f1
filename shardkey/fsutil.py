"""Atomic, durable file writes: never a half-written file, never a world-readable secret."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


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
