"""The KOS decision logic: re-check an approved request's KAP, then issue or deny.

For each pending request, at every poll (handlers are idempotent; the chain is asked
whether the action is still needed before every transaction):

1. read the request; not Approved (denied, completed, ...) -> drop; every token issued
   -> drop; not yet this replica's turn (:mod:`kos.leader`) -> wait;
2. dataset revoked -> deny 15; approval deadline passed -> deny 16 (whatever else
   ``isOpen`` checks, the ``issueTokens`` preflight refuses, and the request is tried
   again next poll);
3. the Key Access Policy version the request was made under, off chain
   (:class:`KapCheck`), then the newest version if the owner published
   one since (a failure there is ``KosPolicyMismatch``, 17);
4. where the policy is open to anyone (no requester list), at most ``issue_limit``
   requests per requester are issued within its window of chain time; one over it is
   deferred (logged once, left ``WAITING`` in the pending set, issued once the window
   allows), never dropped: each issue costs the KOS and every fragment holder a
   transaction, and anyone could ask;
5. unseal each missing holder's wrap key (failure -> deny ``KosWrapKeyInvalid``, 18),
   re-seal it to the holder's registered HPKE key, post all tokens in one transaction.

A poll sends one transaction per request without waiting (consecutive nonces), then
waits once for all of them (:meth:`Orchestrator.wait_in_flight`), so a burst of
approvals is served in the next block rather than one block per request. A request
whose transaction is still in flight after that wait is left alone until it is mined,
reverts or times out. The service drops a request from its pending set only once its
settlement is ``confirmations`` blocks deep.

A committee member (``member`` given: :mod:`kos.member`) runs the same checks on the committee
datasets dealt to an epoch it belongs to (and drops every other request: legacy datasets are the
replicas', and a legacy replica drops committee datasets): it has no turn to wait for (each
member acts on its own), drops a request it already released or denied (``releaseState``),
denies with ``denyRelease`` and, in step 5, posts its signed shares with ``releaseShares``.

Time is always the latest block's timestamp, never the host clock.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from eth_account.signers.local import LocalAccount

from kos.checks import KapCheck, PollCache, WrapKeyUnsealer, wipe
from kos.errors import WrapKeyInvalid
from kos.leader import acts_from
from kos.member import CommitteeMember, HolderKeyUnusable, ShareInvalid
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import SentTx
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import (
    DatasetStatus,
    FragmentDeal,
    RequestInfo,
    RequestStatus,
)
from shardkey.crypto.committee_envelope import dealt_committee_epoch
from shardkey.crypto.errors import HpkeKeyError
from shardkey.crypto.hpke import seal, token_info
from shardkey.faults import crash_point
from shardkey.policy import DenialReason
from shardkey.ratelimit import RateLimiter

log = logging.getLogger("kos.orchestrator")

MAX_ISSUE_ATTEMPTS = 3
REGISTRATION_CACHE = 256
SENDS_KEYS = ("issueTokens", "releaseShares")  # transactions whose landing is Outcome.ISSUED


class Outcome(enum.Enum):
    """What one pass over a request did."""

    ISSUED = "issued"  # tokens sent, or seen mined; done once confirmed on chain
    DENIED = "denied"  # denial sent, or seen mined; done once confirmed
    DROPPED = "dropped"  # nothing left to do (settled, or done by another replica)
    WAITING = "waiting"  # another replica's turn; check again next poll
    RETRY = "retry"  # could not act now (race, RPC failure); check again next poll

    @property
    def final(self) -> bool:
        """Whether the request leaves the pending set."""
        return self in (Outcome.ISSUED, Outcome.DENIED, Outcome.DROPPED)


def _fields(**values: Any) -> dict[str, Any]:
    return {"fields": values}


class Orchestrator:
    """Settles approved requests: re-checks the KAP, then issues tokens or denies.

    Stateless between polls apart from caches of immutable chain data; whether an action
    is still needed is read from the chain each time, so calling :meth:`process` twice
    (or from two replicas) never issues a token twice.
    """

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, unsealer: WrapKeyUnsealer, *,
                 replicas: Sequence[str] = (), takeover_after: int = 10,
                 issue_limit: RateLimiter | None = None,
                 on_tokens_sent: Callable[[int], None] | None = None,
                 member: CommitteeMember | None = None) -> None:
        self.chain = chain
        self.account = account
        self.unsealer = unsealer
        self.member = member  # a committee member; None: a legacy replica
        self.on_tokens_sent = on_tokens_sent  # counts tokens sent (metrics)
        self.replicas = list(replicas) or [account.address]
        if account.address not in self.replicas:
            raise ValueError(f"{account.address} is not in the replica list")
        self.takeover_after = takeover_after
        self.kap = KapCheck(chain, start_block=chain.deployment.start_block)
        self._registrations: OrderedDict[tuple[bytes, int], FragmentDeal] = OrderedDict()
        self._registrations_lock = threading.Lock()
        # Transactions sent and not yet seen mined, by request: a request with one in
        # flight is left alone until it is mined, reverts or times out, so the next poll
        # never sends a second (doomed) transaction for it.
        self._in_flight: dict[int, SentTx] = {}
        self._in_flight_lock = threading.Lock()
        self.issue_limit = issue_limit  # token issues per requester where anyone may ask
        self._deferred: dict[int, int] = {}  # request -> chain time it may be issued from
        self._deferred_lock = threading.Lock()

    # --- one request ------------------------------------------------------------

    def process(self, req: RequestInfo, now: int, cache: PollCache) -> Outcome:
        """Decide and act on one request at chain time ``now``."""
        rid = req.request_id
        landed = self._check_in_flight(rid)
        if landed is not None:
            return landed
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
            return Outcome.DROPPED  # a committee dataset for a replica, a legacy one for a member
        if self.member is not None:
            if self.member.acted(rid):
                return Outcome.DROPPED
        else:
            if req.tokens_issued >= len(fragments.holders):
                return Outcome.DROPPED
            turn = acts_from(self.replicas, self.account.address, rid, req.approved_at, self.takeover_after)
            if now < turn:
                return Outcome.WAITING
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
        if self.member is not None:
            return self._release(req, fragments, cache)
        return self._issue(req, cache)

    def concerns(self, req: RequestInfo) -> bool:
        """Whether the request is this process's to settle: a legacy dataset's for a replica, a
        committee dataset's dealt to an epoch it belongs to for a member (immutable facts)."""
        fragments = self.deal(req.dataset_id, req.fragment_epoch)
        committee_epoch = dealt_committee_epoch(fragments.sealed_wrap_keys)
        if self.member is None:
            return committee_epoch is None
        return committee_epoch is not None and self.member.index_in(committee_epoch) is not None

    def _deferred_by_limit(self, req: RequestInfo, now: int, cache: PollCache) -> bool:
        """Whether issuing must wait for the requester's rate limit (logged once)."""
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
            log.warning("token issue deferred: requester over its rate limit", extra=_fields(
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
            if self.member is not None:
                sent = self.member.committee.submit_denial(self.account, request_id, int(reason))
            else:
                sent = self.chain.retrievals.submit_denial(self.account, request_id, int(reason))
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

    def _check_in_flight(self, request_id: int) -> Outcome | None:
        """None when nothing is in flight for the request; else what to report this poll."""
        with self._in_flight_lock:
            sent = self._in_flight.get(request_id)
        if sent is None:
            return None
        landed = self._landed(request_id, sent)
        if landed is not None:
            return landed
        if time.monotonic() - sent.sent_at < self.chain.client.receipt_timeout:
            return Outcome.WAITING
        self._untrack(request_id)  # dropped by the node? the chain decides next poll
        log.warning("transaction not mined in time; re-checking next poll", extra=_fields(
            request=request_id, tx=sent.hex))
        return Outcome.RETRY

    def wait_in_flight(self, timeout: float) -> dict[int, Outcome]:
        """Wait up to ``timeout`` s for the transactions in flight to be mined.

        A poll sends all its transactions first and then waits here once, so a burst of
        requests is served in the next block. Returns the outcome of each request whose
        transaction was seen mined (or reverted); the others stay in flight.
        """
        deadline = time.monotonic() + timeout
        with self._in_flight_lock:
            waiting = dict(self._in_flight)
        landed: dict[int, Outcome] = {}
        while waiting:
            for request_id, sent in list(waiting.items()):
                outcome = self._landed(request_id, sent)
                if outcome is not None:
                    landed[request_id] = outcome
                    del waiting[request_id]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return landed

    def _landed(self, request_id: int, sent: SentTx) -> Outcome | None:
        """The outcome once the transaction is mined or reverted (and untracked), else None."""
        try:
            receipt = self.chain.client.receipt(sent)
        except TransactionReverted as exc:  # lost a race (another replica?): look again
            self._untrack(request_id)
            log.warning("transaction reverted; re-checking next poll", extra=_fields(
                request=request_id, tx=sent.hex, error=exc.error))
            return Outcome.RETRY
        if receipt is None:
            return None
        self._untrack(request_id)
        issued = sent.fn.name in SENDS_KEYS
        if issued:
            crash_point("kos.after_issue_tx")
        log.info(("shares released" if self.member else "tokens issued") if issued else "denial recorded",
                 extra=_fields(  # the mined hash:
            request=request_id, tx="0x" + bytes(receipt["transactionHash"]).hex(),  # maybe a replacement's
            block=int(receipt["blockNumber"])))
        return Outcome.ISSUED if issued else Outcome.DENIED

    def _untrack(self, request_id: int) -> None:
        with self._in_flight_lock:
            self._in_flight.pop(request_id, None)

    # --- committee shares ---------------------------------------------------------

    def _member_done(self, request_id: int) -> bool:
        """Whether this member's release or denial of the request is on chain (a lost race)."""
        return self.member is not None and self.member.acted(request_id)

    def _release(self, req: RequestInfo, fragments: FragmentDeal, cache: PollCache) -> Outcome:
        assert self.member is not None
        rid = req.request_id
        deal = self.member.deal(req.dataset_id, req.fragment_epoch)
        if deal is None:
            log.error("committee dataset without a registered deal", extra=_fields(
                request=rid, dataset="0x" + req.dataset_id.hex(), fragment_epoch=req.fragment_epoch))
            return self._deny(rid, DenialReason.KOS_WRAP_KEY_INVALID)
        try:
            envelopes = self.member.envelopes(req, fragments, deal, cache.holder_key)
        except ShareInvalid as exc:
            log.error("committee share unusable", extra=_fields(
                request=rid, dataset="0x" + req.dataset_id.hex(), position=exc.position, detail=str(exc)))
            return self._deny(rid, DenialReason.KOS_WRAP_KEY_INVALID)
        except HolderKeyUnusable as exc:
            log.error("holder HPKE key unusable; nothing released",
                      extra=_fields(request=rid, detail=str(exc)))
            return Outcome.RETRY
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
        if self.on_tokens_sent is not None:
            self.on_tokens_sent(len(envelopes))
        log.info("shares sent", extra=_fields(request=rid, holders=list(fragments.holders), tx=sent.hex))
        return Outcome.ISSUED

    # --- tokens -----------------------------------------------------------------

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

    def _missing(self, request_id: int, holders: Sequence[str], none_issued: bool) -> list[str]:
        if none_issued:
            return list(holders)
        return [h for h in holders if not self.chain.retrievals.token_issued(request_id, h)]

    def _issue(self, req: RequestInfo, cache: PollCache) -> Outcome:
        rid = req.request_id
        deal = self.deal(req.dataset_id, req.fragment_epoch)
        missing = self._missing(rid, deal.holders, req.tokens_issued == 0)
        if not missing:
            return Outcome.DROPPED
        try:
            tokens = self._make_tokens(rid, deal, missing, cache)
        except WrapKeyInvalid as exc:
            log.error("wrap key does not open", extra=_fields(
                request=rid, dataset="0x" + req.dataset_id.hex(), position=exc.position))
            return self._deny(rid, DenialReason.KOS_WRAP_KEY_INVALID)
        if not tokens:
            return Outcome.RETRY
        outcome = self._post_tokens(rid, tokens)
        if outcome is Outcome.ISSUED and len(tokens) < len(missing):
            return Outcome.RETRY  # some holder's key was unusable: try it again next poll
        return outcome

    def _make_tokens(self, request_id: int, deal: FragmentDeal, missing: Sequence[str],
                     cache: PollCache) -> dict[str, bytes]:
        chain_id = self.chain.client.chain_id
        tokens: dict[str, bytes] = {}
        positions = {h: j for j, h in enumerate(deal.holders)}
        for holder in missing:
            j = positions[holder]
            wrap_key = self.unsealer.unseal(deal.dataset_id, j, deal.sealed_wrap_keys[j])
            try:
                public_key = cache.holder_key(holder)
                info = token_info(chain_id, request_id, deal.dataset_id, holder)
                # any buffer works; a bytes copy of the wrap key could not be wiped
                tokens[holder] = seal(public_key, wrap_key, info)  # type: ignore[arg-type]
            except HpkeKeyError as exc:  # the holder's registered key is unusable: skip it
                log.error("holder HPKE key unusable; no token for it", extra=_fields(
                    request=request_id, holder=holder, detail=str(exc)))
            finally:
                wipe(wrap_key)
        return tokens

    def _post_tokens(self, request_id: int, tokens: dict[str, bytes]) -> Outcome:
        for _ in range(MAX_ISSUE_ATTEMPTS):
            holders = list(tokens)
            crash_point("kos.before_issue")
            try:
                sent = self.chain.retrievals.submit_tokens(
                    self.account, request_id, holders, [tokens[h] for h in holders])
            except TransactionReverted as exc:
                if exc.error != "RetrievalTokenAlreadyIssued":
                    log.warning("token transaction refused; re-checking next poll", extra=_fields(
                        request=request_id, error=exc.error))
                    return Outcome.RETRY
                tokens = {h: t for h, t in tokens.items()
                          if not self.chain.retrievals.token_issued(request_id, h)}
                log.info("another replica issued some tokens", extra=_fields(
                    request=request_id, still_missing=len(tokens)))
                if not tokens:
                    return Outcome.DROPPED
                continue
            self._track(request_id, sent)
            if self.on_tokens_sent is not None:
                self.on_tokens_sent(len(holders))
            log.info("tokens sent", extra=_fields(request=request_id, holders=holders, tx=sent.hex))
            return Outcome.ISSUED
        return Outcome.RETRY
