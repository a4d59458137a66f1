"""Chain event handlers of the holder agent.

Each handler is idempotent: before any transaction it checks on chain that the action is
still needed (custody not yet confirmed, fragments not yet delivered), and it treats the
contract's "already done" errors as success. So a restart, a rewound cursor or a second
agent run never acts twice. Domain failures (bad staged data, a wrap key that does not
open the bundle, a policy the holder's own check refuses) are logged and skipped; chain outages
raise so the watcher retries the same event.

- ``DatasetRegistered`` naming this holder: refuse for good (logged, never confirmed) a
  registration whose Merkle root is not the root of its published shard hashes: its
  receipts could be "disproven" with a proof under the bogus root. Otherwise take custody
  of the staged shards (hashes must equal the registration's) and bundle, then
  ``confirmCustody``. Incomplete staging is logged and retried whenever the uploader's
  staging folder changes, for at most ``pending_blocks`` blocks after the registration;
  then it is dropped (logged).
- ``DatasetRegistered`` whose wrap-key slots are not the committee marker: refused for good
  (logged), like a bad root: the committee is the network's only KOS, nothing could unlock it.
  Custody of a committee dataset waits for the owner's deal (``DealRegistered``).
- ``SharesReleased`` for a request whose fragment epoch names this holder: the releases are
  judged (:mod:`holder_agent.committee`); ``w_j`` is combined from ``t_k`` verified shares.
- ``TokenIssued`` to this holder (the committee's marker, issued by the release that reaches
  ``t_k``; it says only that the threshold was reached, its payload is not used): re-check the
  request on chain and its policy off chain (:mod:`holder_agent.kap`), combine ``w_j``, decrypt
  the bundle, re-seal it to the requester's ephemeral key, send ``deliverFragments``.
  Deliveries are not waited for one by one: the watcher waits for all of them
  (:meth:`Handlers.wait_deliveries`) before it saves its cursor, so a burst of tokens is
  answered in one block, and an event is only passed for good once its delivery is mined.
  When the policy is open to anyone (no requester list), each delivery costs this holder a
  transaction on anyone's request: deliveries per requester are rate limited on chain time
  and one over the limit is deferred (logged, kept in ``deferred_deliveries.json``, answered
  by :meth:`Handlers.retry_deferred` once the window allows). The list is bounded
  (``max_deferred``): a request deferred while it is full is dropped (logged).
  The requester's ephemeral key is read from the request's ``RetrievalRequested``
  event (the contract stores only its hash) and checked against the stored hash.
- ``DatasetRevoked``: logged. Shards stop being served because every download checks
  ``isOpen`` (false once revoked); the committed data is kept (the owner may need the
  evidence, and deleting is not required for safety: nothing is released any more).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from holder_agent.committee import NOT_SERVED, CommitteeShares
from holder_agent.epochs import FragmentEpochs
from holder_agent.errors import CustodyError
from holder_agent.expectations import registration_of, token_of
from holder_agent.kap import problem_of, recheck
from holder_agent.storage import Store
from shardkey.chain.attestation import AttestationReader
from shardkey.chain.bindings import ShardKeyChain, registration_from_args
from shardkey.chain.connection import SentTx
from shardkey.chain.errors import ChainError, TransactionReverted
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import DatasetStatus, Registration, RequestInfo
from shardkey.chain.watcher import EventWatcher
from shardkey.crypto import pack_bundle, seal, unwrap_bundle
from shardkey.crypto.errors import CryptoError
from shardkey.crypto.hpke import HpkePrivateKey, delivery_info
from shardkey.crypto.merkle import root_commits_to
from shardkey.faults import crash_point
from shardkey.fsutil import atomic_write_bytes
from shardkey.policy.model import Policy
from shardkey.ratelimit import RateLimiter

log = logging.getLogger(__name__)

PENDING_RECHECK = 60.0  # seconds between status checks of a registration awaiting uploads
PENDING_CUSTODY_BLOCKS = 7200  # blocks a registration is retried for (about a day at 12 s)
MAX_DEFERRED = 1024  # default of the holder setting max_deferred_deliveries
MAX_REFUSED = 4096  # requests refused for good remembered (in memory) so each is logged once


@dataclass
class _Pending:
    """A registration naming this holder whose uploads are incomplete (retried until
    custody, until it is no longer Pending, or until ``pending_blocks`` have passed
    since ``registration.block_number``)."""

    registration: Registration
    seen_mtime: float | None
    checked_at: float


@dataclass
class _Deferred:
    """A request whose delivery waits for the requester's rate limit (chain time)."""

    retry_at: int


@dataclass
class _Sent:
    tx: SentTx
    fields: dict[str, object]


class Handlers:
    """The holder's reactions to chain events (register them with :meth:`attach`)."""

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, hpke_key: HpkePrivateKey,
                 store: Store, start_block: int, *, pending_blocks: int = PENDING_CUSTODY_BLOCKS,
                 deliveries: RateLimiter | None = None, max_deferred: int = MAX_DEFERRED,
                 on_delivered: Callable[[], None] | None = None):
        self.chain = chain
        self.on_delivered = on_delivered  # counts deliveries sent (metrics)
        # Told of every registration custody was confirmed for (the API's placement cache).
        self.on_custody: Callable[[Registration], None] | None = None
        self.account = account
        self.address = account.address
        self.hpke_key = hpke_key
        self.store = store
        self.start_block = start_block
        self.pending_path = store.root / "pending_custody.json"
        self.pending: dict[bytes, _Pending] = {}
        self.pending_blocks = pending_blocks
        self.deliveries = deliveries  # per-requester limit where the policy is open to anyone
        self.deferred_path = store.root / "deferred_deliveries.json"
        self.deferred: dict[int, _Deferred] = {}
        self.max_deferred = max_deferred
        # One reader: the request's event gives both the attestation and the ephemeral key.
        self.attestations = AttestationReader(chain, start_block)
        self.in_flight: dict[int, _Sent] = {}  # deliveries sent, not yet seen mined
        self.refused: OrderedDict[int, None] = OrderedDict()  # refused for good (oldest first)
        self._load_pending()
        self._load_deferred()
        self.committee = CommitteeShares(chain, account, hpke_key, store.root, start_block)
        self.epochs = FragmentEpochs(chain, account, store,  # re-dealt bundles (issue 13)
                                     custody_problem=self.committee.custody_problem)

    def attach(self, watcher: EventWatcher) -> None:
        """Register every handler on ``watcher``."""
        watcher.on("DatasetRegistered", self.on_dataset_registered)
        watcher.on("RetrievalRequested", self.on_retrieval_requested)
        watcher.on("RetrievalApproved", self.on_retrieval_approved)
        watcher.on("TokenIssued", self.on_token_issued)
        watcher.on("DatasetRevoked", self.on_dataset_revoked)
        watcher.on("FragmentsRedealt", self.epochs.on_fragments_redealt)
        watcher.on("FragmentEpochActivated", self.epochs.on_epoch_activated)
        watcher.on("SharesReleased", self.on_shares_released)
        watcher.on("DealRegistered", self.on_deal_registered)
        watcher.before_save(self.wait_deliveries)

    # --- custody -------------------------------------------------------------

    def on_dataset_registered(self, event: ChainEvent) -> None:
        """Take custody of what a registration assigns to this holder."""
        registration = registration_from_args(event.args, event.block_number)
        params = registration.params
        if self.address not in params.shard_holders and self.address not in params.fragment_holders:
            return
        self.try_custody(registration)

    def try_custody(self, registration: Registration) -> bool:
        """Commit the staged data and confirm custody; True when nothing is left to do."""
        ds = registration.dataset_id
        fields = {"dataset": "0x" + ds.hex(), "owner": registration.owner}
        if self.chain.datasets.custody_confirmed(ds, self.address):
            log.info("custody already confirmed", extra={"fields": fields})
            self._drop_pending(ds)
            return True
        status = self.chain.datasets.dataset(ds).status
        if status != DatasetStatus.PENDING:
            log.warning("dataset is not pending; custody not confirmed",
                        extra={"fields": {**fields, "status": status.name}})
            self._drop_pending(ds)
            return True
        params = registration.params
        if not root_commits_to(params.merkle_root, registration.shard_hashes, params.shard_count):
            log.error("registered Merkle root is not the root of the published shard hashes; "
                      "custody refused for good", extra={"fields": {
                          **fields, "merkle_root": "0x" + params.merkle_root.hex(),
                          "shard_hashes": len(registration.shard_hashes), "shard_count": params.shard_count}})
            self._drop_pending(ds)
            return True
        expected = {i: registration.shard_hashes[i] for i in range(params.shard_count)
                    if params.shard_holder(i) == self.address}
        bundle = self.address in params.fragment_holders
        blocked = self.committee.custody_problem(ds, 1, registration.sealed_wrap_keys)
        if blocked is not None and blocked.final:
            log.error("custody refused for good", extra={"fields": {**fields, "reason": blocked.reason}})
            self._drop_pending(ds)
            return True
        if blocked is not None:
            log.info("custody waits for the committee deal",
                     extra={"fields": {**fields, "reason": blocked.reason}})
            self._add_pending(registration)
            return False
        try:
            moved = self.store.take_custody(registration.owner, ds, expected, bundle)
        except CustodyError as exc:
            log.error("staged data incomplete or wrong; custody not confirmed",
                      extra={"fields": {**fields, "problems": str(exc),
                                        "shards": sorted(expected), "bundle": bundle}})
            self._add_pending(registration)
            return False
        crash_point("holder.before_confirm_custody")
        try:
            receipt = self.chain.datasets.confirm_custody(self.account, ds)
        except TransactionReverted as exc:
            if exc.error != "DatasetCustodyAlreadyConfirmed":
                log.error("confirmCustody reverted", extra={"fields": {**fields, "error": exc.error}})
            self._drop_pending(ds)
            return True
        log.info("custody confirmed", extra={"fields": {
            **fields, "shards": sorted(expected), "bundle": bundle, "moved": moved,
            "tx": "0x" + bytes(receipt["transactionHash"]).hex()}})
        if self.on_custody is not None:
            self.on_custody(registration)
        self._drop_pending(ds)
        return True

    def retry_pending(self) -> None:
        """Try again the registrations whose staging changed (or every minute); drop those
        registered more than ``pending_blocks`` blocks ago; and pending re-deal custody."""
        self.epochs.retry()
        if not self.pending:
            return
        head = self.chain.client.block_number()
        for ds, entry in list(self.pending.items()):
            age = head - entry.registration.block_number
            if age > self.pending_blocks:
                log.warning("registration waited too long for uploads; no longer retried",
                            extra={"fields": {"dataset": "0x" + ds.hex(),
                                              "owner": entry.registration.owner, "blocks": age,
                                              "limit": self.pending_blocks}})
                self._drop_pending(ds)
                continue
            mtime = self.store.staged_mtime(entry.registration.owner, ds)
            stale = time.monotonic() - entry.checked_at > PENDING_RECHECK
            if mtime == entry.seen_mtime and not stale:
                continue
            entry.seen_mtime, entry.checked_at = mtime, time.monotonic()
            self.try_custody(entry.registration)

    def pending_staging(self) -> list[tuple[str, bytes]]:
        """(owner, dataset) of registrations still waiting for uploads (kept from GC)."""
        return [(e.registration.owner, ds) for ds, e in self.pending.items()] + self.epochs.staging()

    def on_deal_registered(self, event: ChainEvent) -> None:
        """The owner's committee deal is in: confirm custody of a registration that waited for it
        (a re-dealt epoch's custody is retried every poll)."""
        entry = self.pending.get(bytes(event.args["datasetId"]))
        if entry is not None and int(event.args["fragmentEpoch"]) == 1:
            self.try_custody(entry.registration)

    def on_dataset_revoked(self, event: ChainEvent) -> None:
        """Stop waiting for uploads of a revoked dataset; keep what is committed."""
        ds = bytes(event.args["datasetId"])
        if ds in self.pending or self.store.committed_shards(ds) or self.store.has_bundle(ds):
            log.info("dataset revoked: no longer served; committed data kept",
                     extra={"fields": {"dataset": "0x" + ds.hex()}})
        self._drop_pending(ds)

    def _add_pending(self, registration: Registration) -> None:
        ds = registration.dataset_id
        if ds not in self.pending:
            mtime = self.store.staged_mtime(registration.owner, ds)
            self.pending[ds] = _Pending(registration, mtime, time.monotonic())
            self._save_pending()

    def _drop_pending(self, ds: bytes) -> None:
        """The registration is handled for good (custody confirmed, refused or revoked)."""
        self.store.expected.met(registration_of(ds))  # a wait for a committee deal was not the end
        if self.pending.pop(ds, None) is not None:
            self._save_pending()

    def _save_pending(self) -> None:
        data = {ds.hex(): e.registration.block_number for ds, e in self.pending.items()}
        atomic_write_bytes(self.pending_path, json.dumps(data).encode())

    def _load_pending(self) -> None:
        if not self.pending_path.exists():
            return
        for ds_hex, block in json.loads(Path(self.pending_path).read_text()).items():
            ds = bytes.fromhex(ds_hex)
            registration = self.chain.datasets.registration(ds, int(block))
            self.pending[ds] = _Pending(registration, None, 0.0)

    # --- delivery ------------------------------------------------------------

    def on_retrieval_requested(self, event: ChainEvent) -> None:
        """A request for a dataset whose bundle is here: keep its event (the attestation and
        the ephemeral key) and its block (where its releases start), so that answering its token
        reads neither again."""
        if self.store.has_bundle(bytes(event.args["datasetId"])):
            self.attestations.remember(event)
            self.committee.requested_in(int(event.args["requestId"]), event.block_number)

    def on_retrieval_approved(self, event: ChainEvent) -> None:
        """An approval of a request for a dataset whose bundle is here announces its token."""
        if self.store.has_bundle(bytes(event.args["datasetId"])):
            self.store.expected.expect(token_of(int(event.args["requestId"])))

    def on_token_issued(self, event: ChainEvent) -> None:
        """Deliver fragments for a token (the threshold marker) addressed to this holder."""
        if to_checksum_address(event.args["holder"]) != self.address:
            return
        request_id = int(event.args["requestId"])
        self.store.expected.met(token_of(request_id))
        self.deliver(request_id)

    def on_shares_released(self, event: ChainEvent) -> None:
        """A member released its shares: judge them; deliver once ``t_k`` verified shares are in
        and the token flag is set (the release that reaches the threshold issues the tokens)."""
        request_id = int(event.args["requestId"])
        if request_id in self.in_flight or self.chain.retrievals.delivered(request_id, self.address):
            return
        request = self.chain.retrievals.request(request_id)
        collection = self.committee.collect(request)
        if collection is not None and collection.ready() \
                and self.chain.retrievals.token_issued(request_id, self.address):
            self.deliver(request_id)

    def retry_committee(self) -> None:
        """Try again the committee requests still waiting for shares (after a restart, then
        every ``RECHECK`` seconds): a closed or answered one is dropped."""
        for request_id in self.committee.due():
            if not self.chain.retrievals.is_open(request_id) \
                    or self.chain.retrievals.delivered(request_id, self.address):
                self.committee.forget(request_id)
                continue
            self.deliver(request_id)
        self.wait_deliveries()

    def deliver(self, request_id: int) -> bool:
        """Check, combine the wrap key from the members' shares, re-seal and post; True when a
        delivery was sent by this call (the token on chain only says the threshold was reached)."""
        fields: dict[str, object] = {"request": request_id}
        retrievals = self.chain.retrievals
        if request_id in self.in_flight:
            return False  # sent in this round, not mined yet
        if request_id in self.refused:
            return False  # refused for good in this run, logged then
        view = retrievals.holder_view(request_id, self.address)  # one round trip, one block
        if view.delivered:
            log.info("fragments already delivered", extra={"fields": fields})
            self.committee.forget(request_id)
            return False
        is_open = view.is_open
        if is_open and not view.token_issued:
            return False  # the committee's threshold is not reached yet: its token comes with it
        request = view.request
        fields["dataset"] = "0x" + request.dataset_id.hex()
        problem = None if is_open else "request not open (not approved, expired, or dataset revoked)"
        dataset = self.chain.datasets.dataset(request.dataset_id)
        if problem is None and dataset.status == DatasetStatus.REVOKED:
            problem = "dataset revoked"
        if problem is None and request.fragment_epoch != dataset.fragment_epoch:
            problem = (f"request made under fragment epoch {request.fragment_epoch}, superseded by "
                       f"{dataset.fragment_epoch} (re-dealt)")
        deal = None if problem is not None else self.chain.datasets.fragment_set(
            request.dataset_id, request.fragment_epoch)
        if deal is not None and self.address not in deal.holders:
            problem = "this holder is not a fragment holder of the dataset's current epoch"
        if problem is None and self.committee.mode(request.dataset_id, request.fragment_epoch) is None:
            problem = NOT_SERVED
        policy: Policy | None = None
        if problem is None:
            check = recheck(self.chain, request, dataset, self.attestations)
            problem, policy = problem_of(check, request), check.own
        if problem is not None or policy is None:
            self._refuse(request_id, "token not answered", {**fields, "reason": problem})
            return False
        if not self.committee.ready(request):
            return False  # kept waiting: the next SharesReleased (or the recheck) tries again
        if self._deferred_by_limit(request_id, request, policy, fields):
            return False  # (after the shares are in: a deferral counts against the requester)
        assert deal is not None  # set whenever problem is None
        wrapped = self.store.read_bundle(request.dataset_id, deal.epoch)
        if wrapped is None:
            self._refuse(request_id, "token not answered: bundle not committed here", fields)
            return False
        x = deal.x(self.address)
        wrap_key = self.committee.wrap_key(request)
        if wrap_key is None:
            return False  # kept waiting: the next SharesReleased (or the recheck) tries again
        try:
            # The key is in the request's event only; this raises unless it hashes to the
            # stored ephemeralKeyHash (a chain outage: the watcher retries the token).
            key = self.attestations.ephemeral_key(request)
            sealed = self._reseal(request_id, request.dataset_id, x, wrap_key, wrapped, key)
        except CryptoError as exc:
            self._refuse(request_id, "token not answered: cannot open or re-seal",
                         {**fields, "error": type(exc).__name__, "detail": str(exc)})
            return False
        finally:
            wrap_key[:] = bytes(len(wrap_key))
        crash_point("holder.before_deliver")
        try:
            sent = retrievals.submit_delivery(self.account, request_id, sealed)
        except TransactionReverted as exc:
            self._log_reverted(exc, fields)
            return False
        self.in_flight[request_id] = _Sent(sent, {**fields, "x": x})
        self.committee.forget(request_id)
        if self.on_delivered is not None:
            self.on_delivered()
        crash_point("holder.after_deliver_tx")
        return True

    def _deferred_by_limit(self, request_id: int, request: RequestInfo,
                           policy: Policy, fields: dict[str, object]) -> bool:
        """Whether the delivery must wait for the requester's rate limit (then kept, unless
        ``max_deferred`` are kept already: then it is dropped, logged).

        ``policy`` is the request's version as the release check read it.
        """
        if self.deliveries is None:
            return False
        if policy.requesters:  # only listed requesters can ask: their number bounds the cost
            return False
        now = self.chain.client.latest_timestamp()
        kept = self.deferred.get(request_id)
        if kept is not None and kept.retry_at > now:
            # Whatever path asks first (a member's release, the committee recheck after a
            # restart that forgot the counts), a deferred delivery waits for its retry time.
            return True
        admission = self.deliveries.admit(request.requester, request_id, now)
        if admission.allowed:
            if self.deferred.pop(request_id, None) is not None:
                self._save_deferred()
            return False
        if request_id not in self.deferred and len(self.deferred) >= self.max_deferred:
            # Past the bound the request is not kept: the list (and its file) stays bounded
            # whatever an open policy lets anyone request. The request's deadline still
            # applies; the requester can report the fragments missing.
            self._refuse(request_id, "delivery dropped: deferred list full", {
                **fields, "requester": request.requester, "deferred": len(self.deferred),
                "max_deferred": self.max_deferred})
            return True
        if request_id not in self.deferred:
            log.warning("delivery deferred: requester over its rate limit", extra={"fields": {
                **fields, "requester": request.requester, "retry_at": admission.retry_at,
                "limit": self.deliveries.limit, "window": self.deliveries.window}})
        self.deferred[request_id] = _Deferred(admission.retry_at)
        self._save_deferred()
        return True

    def retry_deferred(self) -> None:
        """Deliver the deferred requests whose requester's window allows it now (chain time);
        each is checked again from the start, so a request closed meanwhile is dropped."""
        if not self.deferred:
            return
        now = self.chain.client.latest_timestamp()
        for request_id, entry in sorted(self.deferred.items()):
            if entry.retry_at > now:
                continue
            # A chain outage raises here and keeps the entry for the next poll.
            self.deliver(request_id)  # re-deferred if still over the limit
            if self.deferred.get(request_id) is entry:  # answered or refused for good
                del self.deferred[request_id]
        self._save_deferred()
        self.wait_deliveries()

    def _save_deferred(self) -> None:
        data = {str(rid): {"retry_at": e.retry_at}
                for rid, e in self.deferred.items()}
        atomic_write_bytes(self.deferred_path, json.dumps(data).encode())

    def _load_deferred(self) -> None:
        if not self.deferred_path.exists():
            return
        for rid, entry in json.loads(self.deferred_path.read_text()).items():
            if len(self.deferred) >= self.max_deferred:  # the bound was lowered since
                log.error("delivery dropped: deferred list full", extra={"fields": {
                    "request": int(rid), "max_deferred": self.max_deferred}})
                continue
            self.deferred[int(rid)] = _Deferred(int(entry["retry_at"]))

    def wait_deliveries(self) -> None:
        """Wait until every delivery sent so far is mined, and log each outcome.

        The watcher runs this before it saves its cursor. If the chain cannot say (an
        outage, a transaction not mined in time) this raises and the cursor stays where
        it was: those tokens are handled again, and :meth:`deliver` first checks on
        chain whether each delivery landed after all.
        """
        if not self.in_flight:
            return
        entries = list(self.in_flight.values())
        try:
            outcomes = self.chain.client.wait_many([entry.tx for entry in entries])
        except ChainError:
            self.in_flight.clear()
            raise
        for entry, outcome in zip(entries, outcomes, strict=True):
            if isinstance(outcome, TransactionReverted):
                self._log_reverted(outcome, entry.fields)
            else:
                log.info("fragments delivered", extra={"fields": {
                    **entry.fields, "tx": "0x" + bytes(outcome["transactionHash"]).hex()}})
        self.in_flight.clear()

    @staticmethod
    def _log_reverted(exc: TransactionReverted, fields: dict[str, object]) -> None:
        level = logging.INFO if exc.error == "RetrievalAlreadyDelivered" else logging.WARNING
        log.log(level, "deliverFragments reverted", extra={"fields": {**fields, "error": exc.error}})

    def _refuse(self, request_id: int, message: str, fields: dict[str, object]) -> None:
        """Log a request refused for good once: its shares are dropped, and the other events
        that would deliver it (the threshold's ``SharesReleased`` and ``TokenIssued`` come in one
        transaction, a later member's release) return at once, for the last ``MAX_REFUSED``."""
        log.error(message, extra={"fields": fields})
        self.committee.forget(request_id)
        self.refused[request_id] = None
        while len(self.refused) > MAX_REFUSED:
            self.refused.popitem(last=False)

    def _reseal(self, request_id: int, dataset_id: bytes, x: int, wrap_key: bytearray, wrapped: bytes,
                ephemeral_key: bytes) -> bytes:
        """Decrypt the bundle with ``w_j`` (the caller wipes it), seal its plaintext to the requester."""
        plaintext = bytearray()
        try:
            bundle = unwrap_bundle(bytes(wrap_key), wrapped, dataset_id, x)
            plaintext = bytearray(pack_bundle(bundle))
            return seal(ephemeral_key, bytes(plaintext),
                        delivery_info(self.chain.client.chain_id, request_id, dataset_id, self.address))
        finally:
            plaintext[:] = bytes(len(plaintext))
