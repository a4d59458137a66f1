"""Fault injection for tests: crash a service at a named point, on purpose.

``crash_point(name)`` ends the process at once with exit status 86 (``os._exit``: no
cleanup, no flush, no atexit, like a power cut or SIGKILL) when the environment variable
``SHARDKEY_CRASH_AT`` lists ``name`` (comma-separated). Unset, it costs one dict lookup.
The points and what a crash there proves are listed in docs/FAULTS.md.
"""

from __future__ import annotations

import os
import sys

CRASH_ENV = "SHARDKEY_CRASH_AT"
CRASH_STATUS = 86


def crash_point(name: str) -> None:
    """Exit the process now (status 86) when ``SHARDKEY_CRASH_AT`` names ``name``."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted or name not in {w.strip() for w in wanted.split(",")}:
        return
    sys.stderr.write(f'{{"level": "CRITICAL", "msg": "crash point reached", "point": "{name}"}}\n')
    sys.stderr.flush()
    os._exit(CRASH_STATUS)
