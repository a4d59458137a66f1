"""What the repair rule reads of each dataset's history, kept for a long-lived repairer.

:func:`~shardkey.client.repair_need.assess` needs a dataset's registration, where each of
its shards is now (every ``ShardRepaired``) and which shards were released or proven bad
(every ``ShardReleased`` and ``ShardIntegrityFailureProven``): three log queries over the
dataset's whole life. The repair service looks at every Active dataset every
``scan_interval``; behind a provider that caps log ranges that was each dataset's whole
history in capped queries, every scan. :class:`DatasetHistories` reads a dataset's history
once, at its first look, and after that the new blocks of every dataset together: each
:meth:`DatasetHistories.refresh` is six log queries whatever the number of datasets, the
events of the confirmed blocks (``confirmations`` below the latest) kept, those of the
unconfirmed tail read afresh each time and never kept, so an event a reorg within that
depth takes away leaves nothing behind.

Kept per dataset: its parameters and every shard's holder (a few tens of bytes per shard),
not its shard hashes or wrap keys.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import Registration
from shardkey.chain.placement import Placement, rule_holders
from shardkey.client.repair import ShardMarks, shard_mark, shard_marks

Mark = tuple[int, str]  # (shard index, holder)


@dataclass(frozen=True)
class History:
    """A dataset as the repair rule reads it, through the last refresh's head."""

    registration: Registration  # without its shard hashes and wrap keys
    placement: Placement
    marks: ShardMarks


@dataclass
class _Events:
    """The repair events of a block range, by dataset (repairs in chain order)."""

    repairs: dict[bytes, list[ChainEvent]] = field(default_factory=lambda: defaultdict(list))
    released: dict[bytes, set[Mark]] = field(default_factory=lambda: defaultdict(set))
    proven: dict[bytes, set[Mark]] = field(default_factory=lambda: defaultdict(set))


def _events(chain: ShardKeyChain, first: int, last: int) -> _Events:
    """Every dataset's ``ShardRepaired``, ``ShardReleased`` and ``ShardIntegrityFailureProven``
    in blocks ``first`` through ``last``: three queries."""
    out = _Events()
    for event in chain.datasets.contract.get_logs("ShardRepaired", first, last):
        out.repairs[bytes(event.args["datasetId"])].append(event)
    for event in chain.datasets.contract.get_logs("ShardReleased", first, last):
        out.released[bytes(event.args["datasetId"])].add(shard_mark(event))
    for event in chain.retrievals.contract.get_logs("ShardIntegrityFailureProven", first, last):
        out.proven[bytes(event.args["datasetId"])].add(shard_mark(event))
    return out


@dataclass
class _Kept:
    registration: Registration
    placement: Placement
    released: set[Mark]
    proven: set[Mark]

    def add(self, events: _Events) -> None:
        ds = self.registration.dataset_id
        for event in events.repairs.get(ds, ()):
            self.placement.apply(event)
        self.released |= events.released.get(ds, set())
        self.proven |= events.proven.get(ds, set())


class DatasetHistories:
    """Each looked-at dataset's :class:`History`; :meth:`refresh` before each round of
    :meth:`of` (the repair service: once per poll that looks at datasets)."""

    def __init__(self, chain: ShardKeyChain, confirmations: int):
        self.chain, self.confirmations = chain, confirmations
        self._kept: dict[bytes, _Kept] = {}
        self._block: int | None = None  # every kept dataset's events are in through this block
        self._tail = _Events()  # the events after it, through the last refresh's head
        self._head = -1

    def refresh(self) -> None:
        """Read every dataset's events in the blocks after the last refresh: those now
        confirmed into what is kept, the unconfirmed rest aside (six queries at most)."""
        head = self.chain.client.block_number()
        safe = head - self.confirmations
        if self._block is None:
            self._block = safe  # nothing kept yet: each dataset reads its history to here
        elif safe > self._block:
            confirmed = _events(self.chain, self._block + 1, safe)
            for kept in self._kept.values():
                kept.add(confirmed)
                kept.placement.block = safe
            self._block = safe
        self._tail = _events(self.chain, self._block + 1, head) if head > self._block else _Events()
        self._head = head

    def of(self, dataset_id: bytes) -> History:
        """The dataset's history through the last refresh's head (its registration must be on
        chain); its first look reads its history through the kept block (three queries)."""
        if self._block is None:
            self.refresh()
        assert self._block is not None
        kept = self._kept.get(dataset_id)
        if kept is None:
            registration = dataclasses.replace(
                self.chain.datasets.registration(dataset_id, self.chain.deployment.start_block),
                shard_hashes=(), sealed_wrap_keys=())
            start = registration.block_number
            kept = _Kept(registration, Placement(dataset_id, rule_holders(registration.params), start - 1),
                         set(), set())
            if self._block >= start:
                kept.placement.advance(self.chain.datasets.contract, self._block)
                released, proven = shard_marks(self.chain, dataset_id, start, self._block)
                kept.released |= released
                kept.proven |= proven
            kept.placement.block = max(kept.placement.block, self._block)
            self._kept[dataset_id] = kept
        view = _Kept(kept.registration,
                     dataclasses.replace(kept.placement, holders=list(kept.placement.holders),
                                         repaired=dict(kept.placement.repaired)),
                     set(kept.released), set(kept.proven))
        view.add(self._tail)  # the unconfirmed tail: applied to a copy, not kept
        view.placement.block = max(view.placement.block, self._head)
        return History(kept.registration, view.placement, (frozenset(view.released), frozenset(view.proven)))

    def forget(self, dataset_id: bytes) -> None:
        """Drop what is kept of a dataset (no longer Active: nothing to repair there)."""
        self._kept.pop(dataset_id, None)
