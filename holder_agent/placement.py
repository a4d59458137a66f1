"""The agent's copy of each dataset's placement map (:mod:`shardkey.chain.placement`).

A shard this holder serves must be placed here now: at registration by the rule, or moved
here by a confirmed repair, and not moved away since. The first look-up of a dataset reads
its registration (unless custody handed it over: :meth:`PlacementCache.remember`) and every
``ShardRepaired`` since; later look-ups apply only the events of
blocks after the last one read (one keyed log query per new head, none within a block).
"""

from __future__ import annotations

import threading

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.model import Registration
from shardkey.chain.placement import Placement


class PlacementCache:
    """One :class:`Placement` per dataset, advanced to the block a request is checked at."""

    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._maps: dict[bytes, tuple[Registration, Placement]] = {}
        self._known: dict[bytes, Registration] = {}  # registrations custody was confirmed for

    def remember(self, registration: Registration) -> None:
        """A registration this agent took custody for (the event it handled): the first
        look-up of its dataset need not search the chain for it."""
        with self._lock:
            if len(self._known) >= self.MAX_ENTRIES:
                self._known.clear()
            self._known[registration.dataset_id] = registration

    def view(self, chain: ShardKeyChain, dataset_id: bytes, block: int) -> tuple[Registration, Placement]:
        """The registration of ``dataset_id`` and its placement as of ``block``."""
        with self._lock:
            hit = self._maps.get(dataset_id)
            if hit is None or hit[1].block > block:  # new, or the chain went back
                registration = self._known.get(dataset_id) or chain.datasets.registration(
                    dataset_id, chain.deployment.start_block)
                hit = (registration, chain.datasets.placement(registration, block))
                if len(self._maps) >= self.MAX_ENTRIES:
                    self._maps.clear()
                self._maps[dataset_id] = hit
            else:
                hit[1].advance(chain.datasets.contract, block)
            return hit

    def holder(self, chain: ShardKeyChain, dataset_id: bytes, index: int, block: int) -> str:
        """The holder of shard ``index`` of ``dataset_id`` as of ``block``."""
        return self.view(chain, dataset_id, block)[1].holder(index)
