"""Fragment epochs at the holder: custody of a re-dealt bundle, and deleting superseded ones.

A re-deal (docs/DESIGN.md "Re-deal") registers fragment epoch ``e`` with ``FragmentsRedealt``.
A holder named in it takes custody of the bundle the owner staged for that epoch (checked as
at registration: staged by the dataset's owner, a plausible wrapped bundle; its fragments
root is checked by whoever opens it, the committee-dealt wrap key being the only way in) and confirms
with ``confirmFragmentCustody``. Until then the claim is kept in ``pending_redeal.json`` and
retried every poll, so a restart does not lose it. On ``FragmentEpochActivated`` the holder
deletes its bundles of every other epoch of the dataset: the chain refuses tokens and
deliveries for them (``RetrievalStaleFragmentEpoch``), so they could never be used again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from holder_agent.committee import CustodyBlock
from holder_agent.errors import CustodyError
from holder_agent.expectations import registration_of
from holder_agent.storage import Store
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import DatasetStatus
from shardkey.faults import crash_point
from shardkey.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)


class FragmentEpochs:
    """Handlers of ``FragmentsRedealt`` and ``FragmentEpochActivated`` for one holder."""

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, store: Store, *,
                 custody_problem: Callable[[bytes, int], CustodyBlock | None]):
        self.chain, self.account, self.store = chain, account, store
        self.custody_problem = custody_problem  # the committee deal rule (holder_agent.committee)
        self.address = account.address
        self.path: Path = store.root / "pending_redeal.json"
        self.pending: dict[tuple[bytes, int], str] = {}  # (dataset, epoch) -> owner
        self._load()

    def on_fragments_redealt(self, event: ChainEvent) -> None:
        """Take custody of this holder's bundle of the new epoch, then confirm it."""
        holders = [to_checksum_address(a) for a in event.args["fragmentHolders"]]
        if self.address not in holders:
            return
        ds, epoch = bytes(event.args["datasetId"]), int(event.args["epoch"])
        self.pending[(ds, epoch)] = self.chain.datasets.dataset(ds).owner
        self._save()
        self.retry()

    def on_epoch_activated(self, event: ChainEvent) -> None:
        """Delete the bundles of the dataset's superseded epochs."""
        ds, epoch = bytes(event.args["datasetId"]), int(event.args["epoch"])
        for key in [k for k in self.pending if k[0] == ds and k[1] < epoch]:
            del self.pending[key]  # a later epoch superseded a pending one
            self._save()
        dropped = self.store.drop_bundles(ds, keep_epoch=epoch)
        if dropped:
            log.info("bundles of superseded fragment epochs deleted", extra={"fields": {
                "dataset": "0x" + ds.hex(), "epoch": epoch, "deleted_epochs": dropped}})

    def retry(self) -> None:
        """Try each pending re-deal custody again (a cheap disk check when nothing changed)."""
        for (ds, epoch), owner in list(self.pending.items()):
            if self._try(ds, epoch, owner):
                del self.pending[(ds, epoch)]
                self._save()
                self.store.expected.met(registration_of(ds))  # what its staged bundle announced

    def staging(self) -> list[tuple[str, bytes]]:
        """(owner, dataset) whose staging a pending re-deal still needs (kept from GC)."""
        return [(owner, ds) for (ds, _), owner in self.pending.items()]

    def _try(self, ds: bytes, epoch: int, owner: str) -> bool:
        fields = {"dataset": "0x" + ds.hex(), "epoch": epoch, "owner": owner}
        current, _ = self.chain.datasets.fragment_epochs(ds)
        if current >= epoch or self.chain.datasets.dataset(ds).status != DatasetStatus.ACTIVE:
            log.info("re-deal no longer pending; nothing to confirm", extra={"fields": fields})
            return True
        blocked = self.custody_problem(ds, epoch)
        if blocked is not None and blocked.final:
            log.error("re-dealt fragment epoch refused for good; custody not confirmed",
                      extra={"fields": {**fields, "reason": blocked.reason}})
            return True
        if blocked is not None:
            log.debug("fragment custody waits for the committee deal",
                      extra={"fields": {**fields, "reason": blocked.reason}})
            return False
        try:
            self.store.take_custody(owner, ds, {}, True, epoch)
        except CustodyError as exc:
            log.warning("re-dealt bundle not staged yet; custody not confirmed",
                        extra={"fields": {**fields, "problems": str(exc)}})
            return False
        crash_point("holder.before_confirm_fragment_custody")
        try:
            self.chain.datasets.confirm_fragment_custody(self.account, ds, epoch)
        except TransactionReverted as exc:
            log.warning("confirmFragmentCustody reverted", extra={"fields": {**fields, "error": exc.error}})
            return True
        log.info("fragment custody confirmed", extra={"fields": fields})
        return True

    def _save(self) -> None:
        entries = [{"dataset": ds.hex(), "epoch": epoch, "owner": owner}
                   for (ds, epoch), owner in self.pending.items()]
        atomic_write_bytes(self.path, json.dumps(entries).encode())

    def _load(self) -> None:
        try:
            entries = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (ValueError, UnicodeDecodeError):
            log.error("pending_redeal.json unreadable; re-deal claims dropped", extra={"fields": {
                "path": str(self.path)}})
            return
        for entry in entries:
            self.pending[(bytes.fromhex(entry["dataset"]), int(entry["epoch"]))] = str(entry["owner"])
