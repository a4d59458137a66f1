"""Keep the CLI's resident memory flat as files grow (glibc's allocator)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

M_ARENA_MAX = -8  # <malloc.h>
ARENAS = 2


def limit_arenas() -> bool:
    """Let all threads share ``ARENAS`` malloc arenas; True when the allocator took it.

    Shards, stripes and HTTP bodies are 1 MiB buffers made and freed by several worker
    threads. glibc gives each thread its own arena (up to 8 per core), and freed
    buffers stay in the arena that made them, so the peak grows with the thread count
    and with time: ``shardkey fetch`` reached 170 MiB for 128 MiB and 202 MiB for
    1 GiB. Two arenas: 145-151 MiB for the same fetch, 138-144 MiB for the store, with
    the same CPU time. (A fixed mmap threshold went lower, 129-144 MiB, but cost 30 %
    more client CPU in page faults; docs/PERFORMANCE.md.) Other C libraries are left
    as they are.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, ARENAS))


def pause_collection() -> None:
    """Stop the cyclic garbage collector until :func:`freeze_long_lived` starts it again.

    For a process about to import its libraries: the imports make objects that live as long
    as the process, and collecting them again and again as they pile up is about a tenth of
    the CLI's start-up CPU (144 collections, 70-100 ms, importing what store and fetch need).
    Nothing cyclic worth freeing is made meanwhile. Reference counting still frees
    everything else.
    """
    gc.disable()


def freeze_long_lived() -> None:
    """Move every object alive now out of the cyclic garbage collector's sight, and start the
    collector if :func:`pause_collection` stopped it.

    Call once the modules are imported and the long-lived state is built, before the data
    path starts. The eth-*, pydantic and cryptography imports leave a few hundred thousand
    objects that every full collection would walk again; a store or fetch makes a container
    per shard, chunk and request, so full collections come often, and a frozen heap cut the
    client's CPU by about a tenth (docs/PERFORMANCE.md). Frozen objects are never freed.
    """
    gc.freeze()
    gc.enable()
