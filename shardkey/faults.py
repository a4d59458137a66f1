"""Fault injection for tests: crash a service at a named point, on purpose.

``crash_point(name)`` ends the process at once with exit status 86 (``os._exit``: no
cleanup, no flush, no atexit, like a power cut or SIGKILL) when the environment variable
``SHARDKEY_CRASH_AT`` lists ``name`` (comma-separated). Unset, it costs one dict lookup.
The points and what a crash there proves are listed in docs/FAULTS.md.

``corrupt_shares_for()``: the fragment holders (lower-case addresses) a KOS committee member
sends a wrong share, read from ``SHARDKEY_CORRUPT_SHARES_FOR`` (comma-separated); the member
flips one bit of the share it signs for them, so a holder's ``proveWrongShare`` can be tested
against a real member process. Only this environment variable turns it on (no settings file
can), and unset it costs one dict lookup.
"""

from __future__ import annotations

import os
import sys

CRASH_ENV = "SHARDKEY_CRASH_AT"
CRASH_STATUS = 86
CORRUPT_SHARES_ENV = "SHARDKEY_CORRUPT_SHARES_FOR"


def crash_point(name: str) -> None:
    """Exit the process now (status 86) when ``SHARDKEY_CRASH_AT`` names ``name``."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted or name not in {w.strip() for w in wanted.split(",")}:
        return
    sys.stderr.write(f'{{"level": "CRITICAL", "msg": "crash point reached", "point": "{name}"}}\n')
    sys.stderr.flush()
    os._exit(CRASH_STATUS)


def corrupt_shares_for() -> frozenset[str]:
    """The holder addresses (lower case) named by ``SHARDKEY_CORRUPT_SHARES_FOR``; empty when unset."""
    wanted = os.environ.get(CORRUPT_SHARES_ENV)
    if not wanted:
        return frozenset()
    return frozenset(w.strip().lower() for w in wanted.split(",") if w.strip())
