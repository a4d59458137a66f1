"""Leader order and the persisted pending set (pure: no chain needed)."""

from __future__ import annotations

import stat

from kos.leader import PendingSet, acts_from, leader_of, rank_of

A, B, C = ("0x" + c * 40 for c in "abc")


def test_leader_rotates_and_ranks_follow_the_list() -> None:
    replicas = [A, B, C]
    assert [leader_of(replicas, r) for r in (3, 4, 5, 6)] == [A, B, C, A]
    assert [rank_of(replicas, me, 4) for me in replicas] == [2, 0, 1]
    assert acts_from(replicas, A, 4, approved_at=1000, takeover_after=10) == 1020
    assert acts_from([A], A, 7, approved_at=1000, takeover_after=10) == 1000


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
