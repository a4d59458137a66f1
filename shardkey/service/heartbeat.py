"""``heartbeat.json``: what a service's last poll saw, rewritten after every poll.

The cursor file is saved less often (at most every few seconds on an idle chain), so status
commands read the heartbeat first (``shardkey.cli.lifecycle.state_progress``). Atomic, 0600,
not fsynced: losing one is harmless. A poll that saw what the file already says is not
written again within ``REWRITE_AFTER`` seconds (its ``updated_at`` has whole seconds, and a
service polls up to 20 times a second while it expects a registration).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from shardkey.fsutil import atomic_write_bytes

HEARTBEAT = "heartbeat.json"
REWRITE_AFTER = 1.0  # seconds an unchanged heartbeat is not rewritten
_written: dict[Path, tuple[dict[str, object], float]] = {}  # per file: what it says, when written


def write_heartbeat(state_dir: Path, account: str, cursor_block: int | None, error: str | None = None,
                    **fields: object) -> None:
    """Rewrite ``state_dir/heartbeat.json``: pid, account, cursor block, ok/error, ``fields``."""
    path = state_dir / HEARTBEAT
    says: dict[str, object] = {"pid": os.getpid(), "account": account, "cursor_block": cursor_block,
                               "ok": error is None, "error": error, **fields}
    now = time.monotonic()
    last = _written.get(path)
    if last is not None and last[0] == says and now - last[1] < REWRITE_AFTER:
        return
    body = {**says, "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write_bytes(path, json.dumps(body).encode(), mode=0o600, durable=False)
    _written[path] = (says, now)
