"""Where every shard of a dataset is now: the one placement map of ShardKey.

A registration places shard ``i`` on ``shardHolders[i % len(shardHolders)]`` (the rule);
a confirmed repair moves one shard to a new holder (``ShardRepaired``). The map is the
rule overlaid with every ``ShardRepaired`` event of the dataset since its registration
block, read with the adaptive log reader as one keyed query (the dataset id is an indexed
topic), not one ``shardHolderOf`` call per shard. :meth:`Placement.advance` applies the
events of later blocks only, so a long-lived reader (the holder agent) keeps one map per
dataset up to date with one query per new head. The contract's ``shardHolderOf`` answers
the same for one shard; the integration tests hold the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shardkey.chain.codec import checksum

if TYPE_CHECKING:
    from shardkey.chain.contract import BoundContract
    from shardkey.chain.events import ChainEvent
    from shardkey.chain.model import DatasetParams


def rule_holders(params: DatasetParams) -> list[str]:
    """The holder of every shard at registration (the placement rule)."""
    return [params.shard_holder(i) for i in range(params.shard_count)]


@dataclass
class Placement:
    """The current holder of every shard of one dataset, as of ``block``."""

    dataset_id: bytes
    holders: list[str]
    block: int
    repaired: dict[int, int] = field(default_factory=dict)  # shard index -> block of its last repair

    @classmethod
    def read(cls, registry: BoundContract, dataset_id: bytes, params: DatasetParams,
             from_block: int, to_block: int | None = None) -> Placement:
        """The rule of ``params`` and every repair from ``from_block`` (the registration's)
        through ``to_block`` (default: the head)."""
        placement = cls(dataset_id, rule_holders(params), from_block - 1)
        placement.advance(registry, to_block)
        return placement

    def advance(self, registry: BoundContract, to_block: int | None = None) -> None:
        """Apply the ``ShardRepaired`` events after ``self.block`` through ``to_block``."""
        end = registry.client.block_number() if to_block is None else to_block
        if end <= self.block:
            return
        for event in registry.get_logs("ShardRepaired", self.block + 1, end, datasetId=self.dataset_id):
            self.apply(event)
        self.block = end

    def apply(self, event: ChainEvent) -> None:
        """One ``ShardRepaired`` of this dataset (events in chain order; ``block`` is the caller's)."""
        index = int(event.args["shardIndex"])
        if 0 <= index < len(self.holders):
            self.holders[index] = checksum(event.args["newHolder"])
            self.repaired[index] = event.block_number

    def holder(self, index: int) -> str:
        """The holder of shard ``index`` now."""
        return self.holders[index]

    def indices_of(self, holder: str) -> list[int]:
        """The shards ``holder`` holds now."""
        return [i for i, h in enumerate(self.holders) if h == holder]

    def addresses(self) -> list[str]:
        """Every holder holding a shard now, in first-shard order."""
        return list(dict.fromkeys(self.holders))

    def stripe(self, stripe: int, m: int) -> list[str]:
        """The holders of the ``m`` shards of ``stripe``."""
        return self.holders[stripe * m:(stripe + 1) * m]
