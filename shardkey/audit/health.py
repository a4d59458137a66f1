"""Stripe health from custody receipts (docs/DESIGN.md "Stripe health"). Pure: no I/O.

Each shard is *good* (a valid signed receipt for its registered hash from the holder the
chain places it on), *bad* (a receipt for another hash, or a signature not the holder's)
or *missing* (no receipt, holder unreachable). A stripe of ``m = k + p`` shards is

- ``healthy``: all ``m`` good;
- ``degraded``: some missing or bad, more than ``k + margin`` good;
- ``at risk``: ``k <= good <= k + margin`` (the repair threshold; default margin 1);
- ``lost``: fewer than ``k`` good: the stripe cannot be restored or rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_REPAIR_MARGIN = 1


class Health(StrEnum):
    """How close a stripe is to loss."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    AT_RISK = "at risk"
    LOST = "lost"


class ShardState(StrEnum):
    """What the receipts say about one shard."""

    GOOD = "good"
    BAD = "bad"
    MISSING = "missing"


@dataclass(frozen=True)
class StripeHealth:
    """One stripe's health and the shards behind it."""

    stripe: int
    health: Health
    good: int
    missing: list[int] = field(default_factory=list)
    bad: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """The stripe as ``audit verify --json`` prints it."""
        return {"stripe": self.stripe, "health": self.health.value, "good": self.good,
                "missing": self.missing, "bad": self.bad}


def classify(good: int, k: int, p: int, margin: int = DEFAULT_REPAIR_MARGIN) -> Health:
    """The health of a stripe with ``good`` of its ``k + p`` shards good."""
    if margin < 0:
        raise ValueError(f"repair margin must be >= 0, got {margin}")
    if good < k:
        return Health.LOST
    if good >= k + p:
        return Health.HEALTHY
    if good <= k + margin:
        return Health.AT_RISK
    return Health.DEGRADED


def stripe_health(states: Mapping[int, ShardState], k: int, p: int, shard_count: int,
                  margin: int = DEFAULT_REPAIR_MARGIN) -> list[StripeHealth]:
    """Every stripe's health from each shard's state (a shard not in ``states`` is missing)."""
    m = k + p
    out = []
    for stripe in range(shard_count // m):
        indices = range(stripe * m, (stripe + 1) * m)
        missing = [i for i in indices if states.get(i, ShardState.MISSING) == ShardState.MISSING]
        bad = [i for i in indices if states.get(i) == ShardState.BAD]
        good = m - len(missing) - len(bad)
        out.append(StripeHealth(stripe, classify(good, k, p, margin), good, missing, bad))
    return out
