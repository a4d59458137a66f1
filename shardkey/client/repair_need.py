"""When a dataset is due for repair: the one rule the repair service applies.

A dataset is *due* when one of its shards is repairable (:func:`~shardkey.client.repair.
repairable_shards`, the contract's rule) and either that shard's holder is not Active
(an Exiting, Failed or Retired holder's shards are always moved: an exiting holder waits
on them) or its stripe is at or below the repair threshold, ``k + repair_margin`` good
shards (:func:`shardkey.audit.health.classify`). Here a shard is good unless it is
repairable: what the chain says, not custody receipts (``shardkey audit verify`` asks the
holders). A shard proven bad counts as bad, every other repairable one as missing.

Re-dealing fragments needs the owner's key and a policy-approved retrieval, so a repairer
cannot do it; :attr:`RepairNeed.redeal_holders` names the current fragment holders that
are not Active, for the owner to run ``shardkey redeal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shardkey.audit.health import DEFAULT_REPAIR_MARGIN, Health, ShardState, StripeHealth, stripe_health
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.model import DatasetStatus, HolderInfo, HolderStatus
from shardkey.client.repair import PROVEN_BAD, ShardMarks, repairable_shards
from shardkey.client.repair_history import DatasetHistories


@dataclass(frozen=True)
class RepairNeed:
    """One Active dataset's repair state as the chain shows it."""

    dataset_id: bytes
    repairable: dict[int, str] = field(default_factory=dict)  # shard index -> why
    stripes: list[StripeHealth] = field(default_factory=list)
    due_shards: tuple[int, ...] = ()
    redeal_holders: tuple[str, ...] = ()  # current fragment holders that are not Active

    @property
    def due(self) -> bool:
        """Whether the repair service repairs this dataset now."""
        return bool(self.due_shards)

    @property
    def stripes_at_risk(self) -> int:
        """Stripes at or below the threshold (at risk, or lost: fewer than k good)."""
        return sum(s.health in (Health.AT_RISK, Health.LOST) for s in self.stripes)


def due_shards(repairable: dict[int, str], stripes: list[StripeHealth], m: int,
               holders_of: list[str], holders: dict[str, HolderInfo]) -> tuple[int, ...]:
    """The repairable shards the rule says to repair now (pure; see the module doc)."""
    health = {s.stripe: s.health for s in stripes}
    out = []
    for index in sorted(repairable):
        info = holders.get(holders_of[index])
        gone = info is None or info.status != HolderStatus.ACTIVE
        if gone or health.get(index // m) in (Health.AT_RISK, Health.LOST):
            out.append(index)
    return tuple(out)


def assess(chain: ShardKeyChain, dataset_id: bytes, holders: dict[str, HolderInfo],
           margin: int = DEFAULT_REPAIR_MARGIN, histories: DatasetHistories | None = None) -> RepairNeed:
    """The repair state of ``dataset_id`` (a dataset that is not Active needs nothing);
    ``histories``: a long-lived caller's kept event history (else it is all read now)."""
    if chain.datasets.dataset(dataset_id).status != DatasetStatus.ACTIVE:
        if histories is not None:
            histories.forget(dataset_id)
        return RepairNeed(dataset_id)
    marks: ShardMarks | None = None
    if histories is None:
        registration = chain.datasets.registration(dataset_id, chain.deployment.start_block)
        placement = chain.datasets.placement(registration)
    else:
        history = histories.of(dataset_id)
        registration, placement, marks = history.registration, history.placement, history.marks
    params = registration.params
    repairable = repairable_shards(chain, registration, placement, holders, marks)
    states = {i: ShardState.GOOD for i in range(params.shard_count)}
    states.update({i: ShardState.BAD if why == PROVEN_BAD else ShardState.MISSING
                   for i, why in repairable.items()})
    stripes = stripe_health(states, params.k, params.p, params.shard_count, margin)
    due = due_shards(repairable, stripes, params.m, list(placement.holders), holders)
    fragment_holders = chain.datasets.fragment_set(dataset_id).holders
    gone = tuple(h for h in fragment_holders
                 if holders.get(h) is None or holders[h].status != HolderStatus.ACTIVE)
    return RepairNeed(dataset_id, repairable, stripes, due, gone)
