"""``heartbeat.json``: what a service's last poll saw, rewritten every poll.

The cursor file is saved less often (at most every few seconds on an idle chain), so status
commands read the heartbeat first (``shardkey.cli.lifecycle.state_progress``). Atomic, 0600,
not fsynced: it is rewritten every poll and losing one is harmless.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from shardkey.fsutil import atomic_write_bytes

HEARTBEAT = "heartbeat.json"


def write_heartbeat(state_dir: Path, account: str, cursor_block: int | None, error: str | None = None,
                    **fields: object) -> None:
    """Rewrite ``state_dir/heartbeat.json``: pid, account, cursor block, ok/error, ``fields``."""
    body = {"pid": os.getpid(), "account": account, "cursor_block": cursor_block, "ok": error is None,
            "error": error, **fields, "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write_bytes(state_dir / HEARTBEAT, json.dumps(body).encode(), mode=0o600, durable=False)
