"""What the repair rule reads of each dataset's history, kept for a long-lived repairer.

:func:`~shardkey.client.repair_need.assess` needs a dataset's registration, where each of
its shards is now (every ``ShardRepaired``) and which shards were released or proven bad
(every ``ShardReleased`` and ``ShardIntegrityFailureProven``): three log queries over the
dataset's whole life. The repair service looks at every Active dataset every
``scan_interval``; behind a provider that caps log ranges that was each dataset's whole
history in capped queries, every scan. :class:`DatasetHistories` keeps what it read
through the confirmed head (``confirmations`` below the latest block) and reads only the
blocks after it on the next look. The unconfirmed tail is read afresh each time and never
kept, so an event a reorg within that depth takes away leaves nothing behind.

Kept per dataset: its parameters and every shard's holder (a few tens of bytes per shard),
not its shard hashes or wrap keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.model import Registration
from shardkey.chain.placement import Placement, rule_holders
from shardkey.client.repair import ShardMarks, shard_marks


@dataclass(frozen=True)
class History:
    """A dataset as the repair rule reads it, through the head it was read at."""

    registration: Registration  # without its shard hashes and wrap keys
    placement: Placement
    marks: ShardMarks


@dataclass
class _Kept:
    registration: Registration
    placement: Placement  # through ``block``
    released: set[tuple[int, str]]
    proven: set[tuple[int, str]]
    block: int  # every event through this block is in


class DatasetHistories:
    """Each looked-at dataset's :class:`History`, its confirmed part kept between looks."""

    def __init__(self, chain: ShardKeyChain, confirmations: int):
        self.chain, self.confirmations = chain, confirmations
        self._kept: dict[bytes, _Kept] = {}

    def of(self, dataset_id: bytes) -> History:
        """The dataset's history through the latest block (its registration must be on chain)."""
        head = self.chain.client.block_number()
        kept = self._kept.get(dataset_id)
        if kept is None:
            registration = dataclasses.replace(
                self.chain.datasets.registration(dataset_id, self.chain.deployment.start_block),
                shard_hashes=(), sealed_wrap_keys=())
            start = registration.block_number
            kept = _Kept(registration, Placement(dataset_id, rule_holders(registration.params), start - 1),
                         set(), set(), start - 1)
            self._kept[dataset_id] = kept
        safe = head - self.confirmations
        if safe > kept.block:
            kept.placement.advance(self.chain.datasets.contract, safe)
            released, proven = shard_marks(self.chain, dataset_id, kept.block + 1, safe)
            kept.released |= released
            kept.proven |= proven
            kept.block = safe
        placement = dataclasses.replace(kept.placement, holders=list(kept.placement.holders),
                                        repaired=dict(kept.placement.repaired))
        released, proven = frozenset(kept.released), frozenset(kept.proven)
        if head > kept.block:  # the unconfirmed tail: read, not kept
            placement.advance(self.chain.datasets.contract, head)
            tail_released, tail_proven = shard_marks(self.chain, dataset_id, kept.block + 1, head)
            released, proven = released | tail_released, proven | tail_proven
        return History(kept.registration, placement, (released, proven))

    def forget(self, dataset_id: bytes) -> None:
        """Drop what is kept of a dataset (no longer Active: nothing to repair there)."""
        self._kept.pop(dataset_id, None)
