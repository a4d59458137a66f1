"""Stripe health grading: healthy, degraded, at risk (the repair threshold), lost."""

from __future__ import annotations

import pytest

from shardkey.audit.health import Health, ShardState, classify, stripe_health


@pytest.mark.parametrize(("good", "k", "p", "margin", "health"), [
    (5, 3, 2, 1, Health.HEALTHY),
    (4, 3, 2, 1, Health.AT_RISK),  # k + 1 good: one more loss leaves no spare
    (3, 3, 2, 1, Health.AT_RISK),
    (2, 3, 2, 1, Health.LOST),
    (10, 4, 6, 1, Health.HEALTHY),
    (9, 4, 6, 1, Health.DEGRADED),
    (6, 4, 6, 1, Health.DEGRADED),
    (5, 4, 6, 1, Health.AT_RISK),
    (7, 4, 6, 3, Health.AT_RISK),
    (8, 4, 6, 3, Health.DEGRADED),
    (3, 3, 0, 1, Health.HEALTHY),  # no parity: all good is healthy, one lost is lost
    (2, 3, 0, 1, Health.LOST),
    (4, 3, 2, 0, Health.DEGRADED),
    (3, 3, 2, 0, Health.AT_RISK),
])
def test_classify(good: int, k: int, p: int, margin: int, health: Health) -> None:
    assert classify(good, k, p, margin) is health


def test_negative_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="repair margin"):
        classify(3, 3, 2, -1)


def test_stripe_health_counts_missing_and_bad_per_stripe() -> None:
    k, p = 2, 2
    states = {i: ShardState.GOOD for i in range(12)}
    states[1] = ShardState.BAD  # stripe 0: 3 good -> at risk (k + 1)
    del states[4]  # stripe 1: 2 missing, 1 bad -> lost
    states[5] = ShardState.MISSING
    states[6] = ShardState.BAD
    health = stripe_health(states, k, p, 12)
    assert [(s.stripe, s.health, s.good) for s in health] == [
        (0, Health.AT_RISK, 3), (1, Health.LOST, 1), (2, Health.HEALTHY, 4)]
    assert health[1].missing == [4, 5] and health[1].bad == [6]
    assert health[0].as_json() == {"stripe": 0, "health": "at risk", "good": 3, "missing": [], "bad": [1]}
