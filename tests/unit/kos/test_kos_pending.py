"""The member's persisted set of requests in flight (kos.pending)."""

from __future__ import annotations

import stat

from kos.pending import PendingSet


def test_pending_set_is_saved_atomically_and_reloaded(tmp_path) -> None:
    path = tmp_path / "pending.json"
    pending = PendingSet(path)
    pending.add(3)
    pending.add(1)
    pending.add(3)
    assert not path.exists()  # adds are made durable by flush (the watcher's before_save hook)
    pending.flush()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(PendingSet(path)) == [1, 3]
    pending.discard([3, 9])
    assert list(PendingSet(path)) == [1] and 1 in pending and len(pending) == 1
