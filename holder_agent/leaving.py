"""A holder that leaves: Exiting (``shardkey holder exit``) or Failed (the admin's
``shardkey holder fail``). docs/OPERATIONS.md "Leaving the network".

Such a holder is never placed again; it refuses new uploads (403 ``holder_exiting`` /
``holder_failed`` / ``holder_retired``), keeps serving downloads, deliveries and repair reads
of what it holds, and checks every :data:`CHECK_INTERVAL` seconds what it still holds: for
each dataset it stores, ``shardsHeld`` on chain and whether the current fragment set lists
it (a revoked dataset holds nothing). Once nothing is held, an Exiting holder calls
``completeExit`` (Retired) and deletes its local data; a Failed one deletes it too (the
admin's word ends its duties). The agent keeps running afterwards (it serves nothing, takes
nothing; stop it when convenient).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from holder_agent.storage import Store
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import DatasetStatus, HolderStatus

log = logging.getLogger(__name__)

CHECK_INTERVAL = 5.0  # seconds between status checks (one eth_call when Active)
NOT_TAKING = (HolderStatus.EXITING, HolderStatus.FAILED, HolderStatus.RETIRED)


@dataclass(frozen=True)
class ExitProgress:
    """What a holder still holds on chain, of the datasets it stores."""

    status: HolderStatus
    shards: dict[bytes, int]  # dataset -> shardsHeld, only non-zero ones
    fragment_sets: tuple[bytes, ...]  # datasets whose current fragment set lists the holder

    @property
    def done(self) -> bool:
        """Nothing held any more: the holder may retire."""
        return not self.shards and not self.fragment_sets

    def as_json(self) -> dict[str, Any]:
        """The ``holder status`` form."""
        return {"shards_held": sum(self.shards.values()), "datasets_held": len(set(self.shards) |
                                                                               set(self.fragment_sets)),
                "shards_by_dataset": {"0x" + d.hex(): n for d, n in self.shards.items()},
                "fragment_sets": ["0x" + d.hex() for d in self.fragment_sets], "holds_nothing": self.done}


def exit_progress(chain: ShardKeyChain, address: str, status: HolderStatus,
                  datasets: Iterable[bytes]) -> ExitProgress:
    """What ``address`` still holds of ``datasets`` (revoked ones count for nothing)."""
    shards: dict[bytes, int] = {}
    sets: list[bytes] = []
    for ds in datasets:
        if chain.datasets.dataset(ds).status in (DatasetStatus.REVOKED, DatasetStatus.NONE):
            continue
        held = chain.datasets.shards_held(ds, address)
        if held:
            shards[ds] = held
        if chain.datasets.is_fragment_holder(ds, address):
            sets.append(ds)
    return ExitProgress(status, shards, tuple(sets))


class Leaving:
    """The agent's exit check (called from every poll; throttled)."""

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, store: Store):
        self.chain, self.account, self.store = chain, account, store
        self.status: HolderStatus | None = None  # last seen on chain (None before the first check)
        self._checked = float("-inf")

    @property
    def refusal(self) -> str | None:
        """Why uploads are refused now (the status name), or None."""
        return self.status.name.lower() if self.status in NOT_TAKING else None

    def check(self) -> None:
        """Refresh the status; when leaving, retire and clean up once nothing is held."""
        if time.monotonic() - self._checked < CHECK_INTERVAL:
            return
        self._checked = time.monotonic()
        address = self.account.address
        status = self.chain.holders.holder(address).status
        if status != self.status:
            log.info("holder status", extra={"fields": {"status": status.name.lower()}})
        self.status = status
        if status not in (HolderStatus.EXITING, HolderStatus.FAILED):
            return
        stored = self.store.committed_datasets()
        progress = exit_progress(self.chain, address, status, stored)
        for ds in stored:  # what moved away entirely (or was revoked) is deleted now
            if ds not in progress.shards and ds not in progress.fragment_sets:
                freed = self.store.delete_dataset(ds)
                log.info("dataset no longer held; local data deleted",
                         extra={"fields": {"dataset": "0x" + ds.hex(), "bytes": freed}})
        if not progress.done or status != HolderStatus.EXITING:
            return
        try:
            self.chain.holders.complete_exit(self.account)
        except TransactionReverted as exc:
            log.warning("completeExit reverted", extra={"fields": {"error": exc.error}})
            return
        self.status = HolderStatus.RETIRED
        log.info("exit complete: holder retired; nothing is held here any more (the agent keeps "
                 "running and takes no data; stop it when convenient)", extra={"fields": {}})
