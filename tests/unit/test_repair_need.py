"""The repair service's due rule (shardkey.client.repair_need.due_shards): pure, no chain.

k = 3, p = 2 (stripes of 5), margin 1: a stripe with 4 or fewer good shards is at risk.
"""

from __future__ import annotations

from shardkey.audit.health import ShardState, stripe_health
from shardkey.chain.model import HolderInfo, HolderStatus
from shardkey.client.repair_need import due_shards

HOLDERS = [f"0x{i:040x}" for i in range(1, 11)]  # shard i (of 10) on holder i


def _holders(**status: HolderStatus) -> dict[str, HolderInfo]:
    return {a: HolderInfo(a, status.get(f"h{i}", HolderStatus.ACTIVE), 0, 0, 0, b"", "", f"r{i}")
            for i, a in enumerate(HOLDERS)}


def _due(repairable: dict[int, str], margin: int, **status: HolderStatus) -> tuple[int, ...]:
    states = {i: ShardState.MISSING if i in repairable else ShardState.GOOD for i in range(10)}
    stripes = stripe_health(states, 3, 2, 10, margin)
    return due_shards(repairable, stripes, 5, HOLDERS, _holders(**status))


def test_a_released_shard_is_due_once_its_stripe_is_at_the_threshold() -> None:
    assert _due({2: "released"}, margin=1) == (2,)  # 4 good = k + 1: at risk
    assert _due({2: "released"}, margin=0) == ()  # 4 good > k + 0: degraded, not yet due
    assert _due({2: "released", 3: "released"}, margin=0) == (2, 3)  # 3 good = k


def test_a_shard_of_a_holder_that_is_not_active_is_always_due() -> None:
    for status in (HolderStatus.EXITING, HolderStatus.FAILED, HolderStatus.RETIRED):
        assert _due({7: "holder " + status.name.lower()}, margin=0, h7=status) == (7,)


def test_nothing_repairable_is_never_due() -> None:
    assert _due({}, margin=5) == ()


def test_only_the_stripe_at_risk_is_due() -> None:
    # stripe 0 loses two (3 good: due at margin 0), stripe 1 one (4 good: not at margin 0)
    assert _due({0: "released", 1: "proven bad", 6: "released"}, margin=0) == (0, 1)
