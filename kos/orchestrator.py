"""A committee member's decision logic: re-check an approved request's KAP, then release or deny.

For each pending request, at every poll (handlers are idempotent; the chain is asked
whether the action is still needed before every transaction):

1. read the request; not Approved (denied, completed, ...) -> drop; made under a superseded
   fragment epoch -> drop; its dataset not a committee dataset dealt (``registerDeal``) to
   an epoch this member belongs to -> drop (logged once per dataset: not one this member
   serves); this member's release or denial already on chain (``releaseState``) -> drop;
2. dataset revoked -> deny 15; approval deadline passed -> deny 16 (whatever else
   ``isOpen`` checks, the contract's preflight refuses, and the request is tried again next
   poll);
3. the Key Access Policy version the request was made under, off chain
   (:class:`KapCheck`), then the newest version if the owner published
   one since (a failure there is ``KosPolicyMismatch``, 17);
4. where the policy is open to anyone (no requester list), at most ``issue_limit``
   requests per requester are released within its window of chain time; one over it is
   deferred (logged once, left ``WAITING`` in the pending set, released once the window
   allows), never dropped: each release costs the member and every fragment holder a
   transaction, and anyone could ask;
5. open this member's share of each fragment holder's wrap key (:mod:`kos.member`; one that
   does not open or match its commitment -> deny ``KosWrapKeyInvalid``, 18), seal each to its
   holder and post them all in one ``releaseShares``. Denials go out with ``denyRelease``.

Each member acts on its own (no turns): the contract counts releases and issues the marker
tokens at the ``t_k``-th. A poll sends one transaction per request without waiting
(consecutive nonces), then waits once for all of them (:meth:`Orchestrator.wait_in_flight`),
so a burst of approvals is served in the next block rather than one block per request. A
request whose transaction is still in flight after that wait is left alone until it is mined,
reverts or times out. The service drops a request from its pending set only once this
member's act is ``confirmations`` blocks deep.

Time is always the latest block's timestamp, never the host clock.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kos.checks import KapCheck, PollCache
from kos.member import CommitteeMember, ShareInvalid
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import SentTx
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import (
    DatasetStatus,
    FragmentDeal,
    RequestInfo,
    RequestStatus,
)
from shardkey.chain.rpc import Receipt
from shardkey.crypto.committee_envelope import dealt_committee_epoch
from shardkey.faults import crash_point
from shardkey.policy import DenialReason
from shardkey.ratelimit import RateLimiter

log = logging.getLogger("kos.orchestrator")

REGISTRATION_CACHE = 256
RELEASE = "releaseShares"  # the transaction whose landing is Outcome.ISSUED


class Outcome(enum.Enum):
    """What one pass over a request did."""

    ISSUED = "issued"  # shares released, or seen mined; done once confirmed on chain
    DENIED = "denied"  # denial sent, or seen mined; done once confirmed
    DROPPED = "dropped"  # nothing left to do (settled, done already, or not this member's)
    WAITING = "waiting"  # in flight or deferred by the rate limit; check again next poll
    RETRY = "retry"  # could not act now (race, RPC failure); check again next poll

    @property
    def final(self) -> bool:
        """Whether the request leaves the pending set."""
        return self in (Outcome.ISSUED, Outcome.DENIED, Outcome.DROPPED)


def _fields(**values: Any) -> dict[str, Any]:
    return {"fields": values}


class Orchestrator:
    """Settles approved requests for one member: re-checks the KAP, then releases or denies.

    Stateless between polls apart from caches of immutable chain data; whether an action
    is still needed is read from the chain each time, so calling :meth:`process` twice
    never releases twice (and the contract refuses a second release anyway).
    """

    def __init__(self, chain: ShardKeyChain, member: CommitteeMember, *,
                 issue_limit: RateLimiter | None = None,
                 on_release_sent: Callable[[int], None] | None = None) -> None:
        self.chain = chain
        self.member = member
        self.account = member.account
        self.on_release_sent = on_release_sent  # counts envelopes sent (metrics)
        self.kap = KapCheck(chain, start_block=chain.deployment.start_block)
        self._registrations: OrderedDict[tuple[bytes, int], FragmentDeal] = OrderedDict()
        self._registrations_lock = threading.Lock()
        # Transactions sent and not yet seen mined, by request: a request with one in
        # flight is left alone until it is mined, reverts or times out, so the next poll
        # never sends a second (doomed) transaction for it.
        self._in_flight: dict[int, SentTx] = {}
        self._in_flight_lock = threading.Lock()
        # The block this member's act was seen mined in, by request: nothing more is read of
        # such a request until that block is deep enough to confirm it (the service's rule).
        self._mined: dict[int, int] = {}
        self.issue_limit = issue_limit  # releases per requester where anyone may ask
        self._not_served: set[tuple[bytes, int]] = set()  # (dataset, fragment epoch) logged once
        self._not_served_lock = threading.Lock()
        self._deferred: dict[int, int] = {}  # request -> chain time it may be issued from
        self._deferred_lock = threading.Lock()

    # --- one request ------------------------------------------------------------

    def process(self, req: RequestInfo, now: int, cache: PollCache, *, acted: bool) -> Outcome:
        """Decide and act on one request at chain time ``now``; ``acted``: whether this member's
        release or denial of it was on chain when ``req`` was read. A request with a
        transaction in flight is :meth:`settle_in_flight`'s, not this method's."""
        rid = req.request_id
        if req.status != RequestStatus.APPROVED:
            log.info("request no longer approved; dropped",
                     extra=_fields(request=rid, status=req.status.name))
            with self._deferred_lock:
                self._deferred.pop(rid, None)
            return Outcome.DROPPED
        dataset = cache.dataset(req.dataset_id)
        if req.fragment_epoch != dataset.fragment_epoch:
            # a re-deal moved the keys to a new fragment set: the chain refuses tokens for this
            # request (RetrievalStaleFragmentEpoch), so sending any would only revert
            log.info("request made under a superseded fragment epoch; dropped", extra=_fields(
                request=rid, reason="stale_fragment_epoch", request_epoch=req.fragment_epoch,
                current_epoch=dataset.fragment_epoch))
            return Outcome.DROPPED
        fragments = self.deal(req.dataset_id, req.fragment_epoch)
        if not self.concerns(req):
            self._log_not_served(req)
            return Outcome.DROPPED
        if acted:
            return Outcome.DROPPED
        if dataset.status == DatasetStatus.REVOKED:
            return self._deny(rid, DenialReason.DATASET_REVOKED)
        if dataset.status != DatasetStatus.ACTIVE:
            return self._deny(rid, DenialReason.DATASET_NOT_ACTIVE)
        if now > req.deadline:
            if req.tokens_issued:  # served in part before it closed: nothing to deny
                log.info("request expired with some tokens issued; dropped", extra=_fields(request=rid))
                return Outcome.DROPPED
            return self._deny(rid, DenialReason.APPROVAL_EXPIRED)
        reason = self.kap.reason(req, dataset, now, cache)
        if reason != DenialReason.NONE:
            return self._deny(rid, reason)
        if self._deferred_by_limit(req, now, cache):
            return Outcome.WAITING
        return self._release(req, fragments, cache)

    def concerns(self, req: RequestInfo) -> bool:
        """Whether the request is this member's to settle: its dataset's slots carry the marker
        of a committee epoch this member belongs to, and the owner's deal is registered (the
        contract takes neither a release nor a denial without one). Immutable facts: a deal can
        only be registered before the dataset is Active, so before any request."""
        return self._not_served_because(req) is None

    def _not_served_because(self, req: RequestInfo) -> str | None:
        fragments = self.deal(req.dataset_id, req.fragment_epoch)
        committee_epoch = dealt_committee_epoch(fragments.sealed_wrap_keys)
        if committee_epoch is None:
            return "not a committee dataset: this network does not serve it"
        if self.member.index_in(committee_epoch) is None:
            return f"dealt to committee epoch {committee_epoch}, which this member is not part of"
        if self.member.key_problem(committee_epoch) is not None:  # it rotated its key since
            return (f"dealt to committee epoch {committee_epoch}; this member's registered HPKE key in "
                    f"committee epoch {committee_epoch} is not the one it runs with, so it cannot open its "
                    "shares there (run that epoch's key in another member process, or re-deal)")
        if self.member.deal(req.dataset_id, req.fragment_epoch) is None:
            return "a committee dataset whose owner registered no deal: no member can release or deny it"
        return None

    def _log_not_served(self, req: RequestInfo) -> None:
        """Log once per (dataset, fragment epoch) why this member leaves its requests alone."""
        key = (req.dataset_id, req.fragment_epoch)
        with self._not_served_lock:
            if key in self._not_served:
                return
            self._not_served.add(key)
        log.warning("request for a dataset this member does not serve; dropped", extra=_fields(
            request=req.request_id, dataset="0x" + req.dataset_id.hex(), why=self._not_served_because(req)))

    def _deferred_by_limit(self, req: RequestInfo, now: int, cache: PollCache) -> bool:
        """Whether releasing must wait for the requester's rate limit (logged once)."""
        if self.issue_limit is None:
            return False
        if cache.policy(req.dataset_id, req.policy_version).requesters:
            return False  # only listed requesters can ask: their number bounds the cost
        admission = self.issue_limit.admit(req.requester, req.request_id, now)
        with self._deferred_lock:
            if admission.allowed:
                self._deferred.pop(req.request_id, None)
                return False
            first = req.request_id not in self._deferred
            self._deferred[req.request_id] = admission.retry_at
        if first:
            log.warning("release deferred: requester over its rate limit", extra=_fields(
                request=req.request_id, requester=req.requester, retry_at=admission.retry_at,
                limit=self.issue_limit.limit, window=self.issue_limit.window))
        return True

    def deferred(self) -> dict[int, int]:
        """Requests deferred by the rate limit, with the chain time each may go from."""
        with self._deferred_lock:
            return dict(self._deferred)

    def _deny(self, request_id: int, reason: DenialReason) -> Outcome:
        with self._deferred_lock:
            self._deferred.pop(request_id, None)  # e.g. its deadline passed while deferred
        try:
            sent = self.member.committee.submit_denial(self.account, request_id, int(reason))
        except TransactionReverted as exc:
            if exc.error == "RetrievalInvalidStatus" or self._member_done(request_id):
                log.info("request already settled; dropped", extra=_fields(request=request_id))
                return Outcome.DROPPED
            raise
        self._track(request_id, sent)
        log.warning("request denied", extra=_fields(
            request=request_id, reason=reason.name, code=int(reason), why=reason.description,
            tx=sent.hex))
        return Outcome.DENIED

    # --- transactions in flight ---------------------------------------------------

    def _track(self, request_id: int, sent: SentTx) -> None:
        with self._in_flight_lock:
            self._in_flight[request_id] = sent

    def in_flight(self, request_id: int) -> bool:
        """Whether a transaction for the request is sent and not yet seen mined."""
        with self._in_flight_lock:
            return request_id in self._in_flight

    def settle_in_flight(self, request_ids: Iterable[int]) -> dict[int, Outcome]:
        """What to report this poll for those of ``request_ids`` with a transaction in flight
        (their receipts asked for in one batch): its outcome once mined or reverted,
        ``WAITING`` while it is not, ``RETRY`` once it is not mined within the receipt timeout
        (dropped by the node? the chain decides next poll). The others are not in the result."""
        with self._in_flight_lock:
            sents = {r: self._in_flight[r] for r in request_ids if r in self._in_flight}
        if not sents:
            return {}
        outcomes: dict[int, Outcome] = {}
        for request_id, landed in self._look(sents).items():
            sent = sents[request_id]
            if landed is not None:
                outcomes[request_id] = landed
            elif time.monotonic() - sent.sent_at < self.chain.client.receipt_timeout:
                outcomes[request_id] = Outcome.WAITING
            else:
                self._untrack(request_id)
                log.warning("transaction not mined in time; re-checking next poll", extra=_fields(
                    request=request_id, tx=sent.hex))
                outcomes[request_id] = Outcome.RETRY
        return outcomes

    def wait_in_flight(self, timeout: float) -> dict[int, Outcome]:
        """Wait up to ``timeout`` s for the transactions in flight to be mined.

        A poll sends all its transactions first and then waits here once, so a burst of
        requests is served in the next block. Their receipts are asked for together (one
        batch), and again only once a new block is out: a burst's hundred transactions cost
        a provider one call per block, not one each every 50 ms. Returns the outcome of each
        request whose transaction was seen mined (or reverted); the others stay in flight.
        """
        deadline = time.monotonic() + timeout
        with self._in_flight_lock:
            waiting = dict(self._in_flight)
        landed: dict[int, Outcome] = {}
        looked_at: int | None = None
        while waiting:
            head = self.chain.client.block_number()
            if head != looked_at:
                looked_at = head
                for request_id, outcome in self._look(waiting).items():
                    if outcome is not None:
                        landed[request_id] = outcome
                        del waiting[request_id]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return landed

    def _look(self, sents: dict[int, SentTx]) -> dict[int, Outcome | None]:
        """Each request's outcome from one batch of its transactions' receipts (None: not
        mined yet)."""
        ids = list(sents)
        receipts = self.chain.client.receipts([sents[r] for r in ids])
        return {r: self._outcome(r, sents[r], got) for r, got in zip(ids, receipts, strict=True)}

    def _outcome(self, request_id: int, sent: SentTx,
                 got: Receipt | TransactionReverted | None) -> Outcome | None:
        """The outcome once the transaction is mined or reverted (and untracked), else None."""
        if isinstance(got, TransactionReverted):  # lost a race (the request settled?): look again
            self._untrack(request_id)
            log.warning("transaction reverted; re-checking next poll", extra=_fields(
                request=request_id, tx=sent.hex, error=got.error))
            return Outcome.RETRY
        if got is None:
            return None
        self._untrack(request_id)
        with self._in_flight_lock:
            self._mined[request_id] = int(got["blockNumber"])
        issued = sent.fn.name == RELEASE
        if issued:
            crash_point("kos.after_issue_tx")
        log.info("shares released" if issued else "denial recorded",
                 extra=_fields(  # the mined hash:
            request=request_id, tx="0x" + bytes(got["transactionHash"]).hex(),  # maybe a replacement's
            block=int(got["blockNumber"])))
        return Outcome.ISSUED if issued else Outcome.DENIED

    def mined_in(self, request_id: int) -> int | None:
        """The block this member's release or denial was seen mined in (None if not seen)."""
        with self._in_flight_lock:
            return self._mined.get(request_id)

    def forget_mined(self, request_ids: Sequence[int]) -> None:
        """Forget where the acts on ``request_ids`` were mined: confirmed (they leave the
        pending set), or gone from the chain at that depth (a reorg: act again)."""
        with self._in_flight_lock:
            for request_id in request_ids:
                self._mined.pop(request_id, None)

    def _untrack(self, request_id: int) -> None:
        with self._in_flight_lock:
            self._in_flight.pop(request_id, None)

    # --- committee shares ---------------------------------------------------------

    def _member_done(self, request_id: int) -> bool:
        """Whether this member's release or denial of the request is on chain (a lost race)."""
        return self.member.acted(request_id)

    def _release(self, req: RequestInfo, fragments: FragmentDeal, cache: PollCache) -> Outcome:
        rid = req.request_id
        deal = self.member.deal(req.dataset_id, req.fragment_epoch)
        if deal is None:  # concerns() saw it registered; deals are never removed
            return Outcome.RETRY
        try:
            envelopes = self.member.envelopes(req, fragments, deal, cache.holder_key)
        except ShareInvalid as exc:
            log.error("committee share unusable", extra=_fields(
                request=rid, dataset="0x" + req.dataset_id.hex(), position=exc.position, detail=str(exc)))
            return self._deny(rid, DenialReason.KOS_WRAP_KEY_INVALID)
        crash_point("kos.before_issue")
        try:
            sent = self.member.committee.submit_release(self.account, rid, envelopes)
        except TransactionReverted as exc:
            if self._member_done(rid):
                return Outcome.DROPPED
            log.warning("release transaction refused; re-checking next poll", extra=_fields(
                request=rid, error=exc.error))
            return Outcome.RETRY
        self._track(rid, sent)
        if self.on_release_sent is not None:
            self.on_release_sent(len(envelopes))
        log.info("shares sent", extra=_fields(request=rid, holders=list(fragments.holders), tx=sent.hex))
        return Outcome.ISSUED

    # --- fragment deals -----------------------------------------------------------

    def deal(self, dataset_id: bytes, epoch: int) -> FragmentDeal:
        """The fragment holders and sealed wrap keys of one epoch (the registration's for epoch
        1, ``FragmentsRedealt``'s after a re-deal; immutable, cached, read once across threads)."""
        key = (dataset_id, epoch)
        with self._registrations_lock:
            if key in self._registrations:
                self._registrations.move_to_end(key)
                return self._registrations[key]
            deal = self.chain.datasets.fragment_deal(dataset_id, epoch, self.chain.deployment.start_block)
            self._registrations[key] = deal
            while len(self._registrations) > REGISTRATION_CACHE:
                self._registrations.popitem(last=False)
            return deal
