"""How much of a file is in the page cache (``mincore`` on a private mapping of it)."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]


def resident_pages(path: Path, offset: int = 0, length: int | None = None) -> int:
    """Pages of ``path`` (from ``offset``, ``length`` bytes or to the end) in the page cache."""
    size = path.stat().st_size
    length = size - offset if length is None else length
    if length <= 0:
        return 0
    with open(path, "rb") as handle:
        mapping = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY)  # mapping: no read
    anchor = ctypes.c_char.from_buffer(mapping)
    try:
        base = ctypes.addressof(anchor) + offset - offset % mmap.PAGESIZE
        span = length + offset % mmap.PAGESIZE
        vector = (ctypes.c_ubyte * -(-span // mmap.PAGESIZE))()
        if _libc.mincore(ctypes.c_void_p(base), span, vector) != 0:
            raise OSError(ctypes.get_errno(), "mincore")
        return sum(v & 1 for v in vector)
    finally:
        del anchor
        mapping.close()


def drops_pages(folder: Path) -> bool:
    """Whether the filesystem of ``folder`` lets clean pages be dropped (tmpfs does not:
    its pages are the file)."""
    probe = folder / ".pagecache-probe"
    with open(probe, "wb") as handle:
        handle.write(os.urandom(1 << 20))
        handle.flush()
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    dropped = resident_pages(probe) == 0
    probe.unlink()
    return dropped
