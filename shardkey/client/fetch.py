"""``shardkey fetch``: collect fragments, rebuild shard keys, download, verify, restore.

docs/DESIGN.md "Retrieve" step 5. Fragments come from ``FragmentsDelivered`` events, sealed
to the request's ephemeral key; each holder's fragments are checked against its registered
fragments root (a wrong one is claimed on chain as ``Wrong``, the holder named, and its
fragments dropped). A timeout with too few tokens names the committee members that neither
released nor denied and those that denied. Any ``t`` good holders
rebuild every data shard key (shard format v2: parity shards have none). A holder with a
token that never delivered is claimed ``Missing``, and only once the request's deadline has
passed on chain (before that it may still deliver).
Shards are downloaded stripe by stripe, a stripe's ``k`` shards at once on their holders'
transfer lanes (:mod:`shardkey.client.lanes`), from the least busy holders (data positions
unless their holders have a full set of lanes more queued than a parity holder; more
positions when one fails),
several stripes in flight, each shard read into a reused buffer and checked against its
registered SHA-256; any ``k`` good shards decode to the stripe's ``k`` data ciphertexts,
which are then decrypted into the stripe's output buffer and written in order; a holder
that serves a wrong shard is proven on chain with its own ``ShardServed`` receipt for this
request and a Merkle proof. What became
of every report (mined, skipped and why, reverted and the error) is in
``FetchResult.reports``, which the CLI prints: a skipped or reverted proof is never shown as
proven. The output is written to a temporary file beside ``out`` and renamed only when
complete: never a partial file. It is written with direct I/O past the page cache
(:class:`~shardkey.bulkio.DirectWriter`; where the filesystem refuses that, through a
:class:`~shardkey.bulkio.PageRecycler`), so a large restore neither fills memory nor pays for
fresh page-cache pages.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from eth_account.signers.local import LocalAccount

from shardkey.bulkio import DirectWriter
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime
from shardkey.chain.eip712 import recover, served_message
from shardkey.chain.model import FragmentDeal, FragmentFailureKind, Registration, RequestInfo, RequestStatus
from shardkey.chain.placement import Placement
from shardkey.chain.repair import deal_from_registration
from shardkey.client.committee_status import committee_deniers, committee_not_released
from shardkey.client.holder_http import HolderClient, HolderRequestError, ServedShard
from shardkey.client.lanes import Buffers, Lanes, stripes_in_flight
from shardkey.client.reports import ChainReport, ReportKind, ReportOutcome, send_report
from shardkey.client.transport import LANES
from shardkey.crypto import data_shard_indices
from shardkey.crypto.bundle import unpack_bundle
from shardkey.crypto.erasure import stripe_bounds
from shardkey.crypto.errors import CryptoError
from shardkey.crypto.hpke import HpkePrivateKey, delivery_info
from shardkey.crypto.merkle import MerkleTree
from shardkey.crypto.shamir import Share, combine, holder_fragments_root
from shardkey.crypto.stripe import open_stripe_into, stored_shard_length
from shardkey.errors import PolicyDenied, RestoreError
from shardkey.fsutil import atomic_writer
from shardkey.policy.evaluate import DenialReason

Progress = Callable[[int], None]


@dataclass
class FetchResult:
    """What a fetch did."""

    request_id: int
    bytes_written: int
    good_holders: list[str]
    bad_fragment_holders: list[str] = field(default_factory=list)
    missing_fragment_holders: list[str] = field(default_factory=list)
    bad_shards: list[tuple[int, str]] = field(default_factory=list)
    reports: list[ChainReport] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    parity_shards: int = 0  # shards read from parity positions (each costs its stripe a decode)


SOON_POLL, SOON_WINDOW, LATER_POLL = 0.05, 2.0, 0.2
# Reading a parity shard costs its stripe a decode (a few ms of CPU per MiB): worth it only
# when the links, not the CPU, are the limit, which shows as slow shard requests.
SLOW_REQUEST = 0.1  # seconds per shard request above which the links are taken to be the limit
WORKERS = 12  # most stripes in flight: with 1 MiB shards, enough to fill five links 150 ms away
BUFFER_BUDGET = 96 << 20  # bytes of the shards of the stripes in flight


def poll_wait(since: float) -> float:
    """Seconds until the next look at the chain while waiting for approvals or deliveries:
    ``SOON_POLL`` for the first ``SOON_WINDOW`` seconds (on a chain mining every half second they
    mostly land in that window, and a 0.2 s poll was a tenth of a 1 MiB fetch), then ``LATER_POLL``
    (fewer calls to a hosted provider during a long wait)."""
    return SOON_POLL if time.monotonic() - since < SOON_WINDOW else LATER_POLL


def wait_for_approval(chain: ShardKeyChain, request_id: int, deadline: float) -> RequestInfo:
    """Wait until the request is approved; a denial raises :class:`PolicyDenied`."""
    started = time.monotonic()
    while True:
        info = chain.retrievals.request(request_id)
        if info.status == RequestStatus.NONE:
            raise RestoreError(f"request {request_id} does not exist on this chain")
        if info.status == RequestStatus.DENIED:
            reason = DenialReason(info.denial_reason)
            raise PolicyDenied(f"request {request_id} was denied: {reason.label} ({reason.description})"
                               f"{committee_deniers(chain, info)}")
        if info.status in (RequestStatus.APPROVED, RequestStatus.COMPLETED):
            return info
        if time.monotonic() > deadline:
            raise PolicyDenied(f"request {request_id} is still pending: approvals are missing")
        time.sleep(poll_wait(started))


def request_deal(chain: ShardKeyChain, request: RequestInfo,
                 registration: Registration | None = None) -> FragmentDeal:
    """The fragment set (holders, threshold, roots) of the epoch the request was made under
    (epoch 1 from ``registration`` when given: no second log query)."""
    if request.fragment_epoch == 1 and registration is not None:
        return deal_from_registration(registration)
    return chain.datasets.fragment_deal(request.dataset_id, request.fragment_epoch,
                                        chain.deployment.start_block)


def collect_fragments(chain: ShardKeyChain, requester: LocalAccount, request: RequestInfo,
                      registration: Registration, deal: FragmentDeal, key: HpkePrivateKey,
                      deadline: float, result: FetchResult) -> dict[int, dict[int, bytes]]:
    """Shares by x then shard index from at least ``t`` holders of the request's epoch
    (``deal``) whose roots verify."""
    good: dict[int, dict[int, bytes]] = {}
    seen: set[str] = set()
    start = chain.client.blocks_at(request.requested_at, registration.block_number)[0]  # deliveries follow it
    waiting_since = time.monotonic()
    while True:
        logs = chain.retrievals.contract.get_logs("FragmentsDelivered", start, requestId=request.request_id)
        for log in logs:
            holder = log.args["holder"]
            if holder in seen or holder not in deal.holders:
                continue
            seen.add(holder)
            x = deal.x(holder)
            sealed = bytes(log.args["sealedFragments"])
            shares = _open_delivery(chain, request, registration, deal, key, holder, x, sealed)
            if shares is None:
                result.bad_fragment_holders.append(holder)
                result.reports.append(_report_fragment_failure(chain, requester, request.request_id,
                                                               holder, FragmentFailureKind.WRONG))
                continue
            good[x] = shares
            result.good_holders.append(holder)
        if len(good) >= deal.threshold:
            report_missing_fragments(chain, requester, request, deal.holders, seen, result)
            return good
        if len(seen) == len(deal.holders) or time.monotonic() > deadline:
            missing = [h for h in deal.holders if h not in seen]
            report_missing_fragments(chain, requester, request, deal.holders, seen, result)
            not_released = kos_not_released(chain, request, deal, time.monotonic() - waiting_since)
            if not_released is not None:
                raise RestoreError(not_released)
            claimed = (f" (claimed missing on chain: {', '.join(result.missing_fragment_holders)})"
                       if result.missing_fragment_holders else "")
            raise RestoreError(
                f"only {len(good)} of the {deal.threshold} fragment holders needed delivered valid "
                f"fragments; missing: {', '.join(missing) or 'none'}{claimed}; wrong: "
                f"{', '.join(result.bad_fragment_holders) or 'none'}")
        time.sleep(poll_wait(waiting_since))


def kos_not_released(chain: ShardKeyChain, request: RequestInfo, deal: FragmentDeal,
                     waited: float) -> str | None:
    """Why no fragments came when the KOS committee issued fewer tokens than the threshold, else None.

    Holders deliver only for a token, so missing deliveries then say nothing about them. The
    message names the members that neither released nor denied, and those that denied
    (:mod:`shardkey.client.committee_status`).
    """
    request_id, threshold = request.request_id, deal.threshold
    info = chain.retrievals.request(request_id)
    if info.tokens_issued >= threshold:
        return None
    committee = committee_not_released(chain, info, deal, waited)
    if committee is not None:
        return committee
    return (f"no KOS will release request {request_id}: its fragment epoch {deal.epoch} is not dealt to a "
            f"KOS committee epoch (not every wrap key slot is the committee marker: it was not stored by "
            f"'shardkey store'), so {info.tokens_issued} of the {threshold} unlock tokens needed were issued "
            f"after waiting {waited:.0f} s; no member will ever release it (a re-deal needs their tokens "
            f"too): the owner stores the file again with 'shardkey store'")


def _open_delivery(chain: ShardKeyChain, request: RequestInfo, registration: Registration,
                   deal: FragmentDeal, key: HpkePrivateKey, holder: str, x: int,
                   sealed: bytes) -> dict[int, bytes] | None:
    params = registration.params
    try:
        plaintext = key.open(sealed, delivery_info(chain.client.chain_id, request.request_id,
                                                   registration.dataset_id, holder))
        bundle = unpack_bundle(plaintext, dataset_id=registration.dataset_id, x=x)
    except CryptoError:
        return None
    shares = dict(bundle.entries)
    if sorted(shares) != data_shard_indices(params.shard_count, params.k, params.p):
        return None
    root = holder_fragments_root(registration.dataset_id, x, shares)
    if not hmac.compare_digest(root, deal.fragment_roots[x - 1]):
        return None
    return shares


def report_missing_fragments(chain: ShardKeyChain, requester: LocalAccount, request: RequestInfo,
                             fragment_holders: Sequence[str], seen: set[str],
                             result: FetchResult) -> None:
    """Claim ``Missing`` for every holder with a token and no delivery, once the request's
    deadline has passed on chain (chain time, never the host clock); before it, each such
    holder is reported skipped (the contract would refuse the claim)."""
    retrievals = chain.retrievals
    open_until = request.deadline if chain.client.latest_timestamp() <= request.deadline else None
    for holder in fragment_holders:
        if holder in seen or not retrievals.token_issued(request.request_id, holder) \
                or retrievals.delivered(request.request_id, holder):
            continue
        kind = ReportKind.MISSING_FRAGMENTS
        if open_until is not None:
            result.reports.append(ChainReport(kind, holder, ReportOutcome.SKIPPED,
                                              f"the request's deadline ({open_until}) has not passed"))
            continue
        report = _report_fragment_failure(chain, requester, request.request_id, holder,
                                          FragmentFailureKind.MISSING)
        result.reports.append(report)
        if report.outcome == ReportOutcome.MINED:
            result.missing_fragment_holders.append(holder)


def _report_fragment_failure(chain: ShardKeyChain, requester: LocalAccount, request_id: int,
                             holder: str, kind: FragmentFailureKind) -> ChainReport:
    wrong = kind == FragmentFailureKind.WRONG
    report_kind = ReportKind.WRONG_FRAGMENTS if wrong else ReportKind.MISSING_FRAGMENTS
    return send_report(report_kind, holder,
                       lambda: chain.retrievals.report_fragment_failure(requester, request_id, holder, kind))


def expired(chain: ShardKeyChain, request: RequestInfo) -> bool:
    """Whether an approved request is past its deadline by chain time: nothing is served any
    more, so there is nothing to restore (and no key is needed to settle it)."""
    return request.status == RequestStatus.APPROVED and chain.client.latest_timestamp() > request.deadline


def settle_expired(chain: ShardKeyChain, requester: LocalAccount, request: RequestInfo) -> NoReturn:
    """Claim ``Missing`` for each holder with a token that never delivered to an expired
    request, then raise :class:`RestoreError` saying so. Needs no ephemeral key: claims are
    about the request, not about what the deliveries contain."""
    result = FetchResult(request.request_id, 0, [])
    report_missing_fragments(chain, requester, request, request_deal(chain, request).holders, set(), result)
    claimed = (f"; claimed missing on chain: {', '.join(result.missing_fragment_holders)}"
               if result.missing_fragment_holders else "; no new claim")
    raise RestoreError(f"request {request.request_id} passed its deadline ({request.deadline}, chain "
                       f"time) before it was restored: holders no longer serve it{claimed}; make a "
                       f"new request")


def fetch(chain: ShardKeyChain, requester: LocalAccount, request_id: int, out: Path,
          key: HpkePrivateKey, timeout: float = 120.0, workers: int = WORKERS,
          progress: Progress | None = None, lanes: int = LANES) -> FetchResult:
    """Restore the dataset of an approved request into ``out``; mark the request complete."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    result = FetchResult(request_id, 0, [])
    request = wait_for_approval(chain, request_id, deadline)
    registration = chain.datasets.registration(request.dataset_id, chain.deployment.start_block)
    params = registration.params
    result.timings["approval"] = time.perf_counter() - started
    deal = request_deal(chain, request, registration)
    shares = collect_fragments(chain, requester, request, registration, deal, key, deadline, result)
    result.timings["fragments"] = time.perf_counter() - started - result.timings["approval"]
    xs = sorted(shares)[: deal.threshold]
    placement = chain.datasets.placement(registration)
    endpoints = {h.address: h.endpoint for h in chain.holders.holders_info(placement.addresses())}
    clock = ChainTime.of(chain.client)
    clients = {a: HolderClient(a, e, requester, clock, lanes=lanes) for a, e in endpoints.items()}
    workers = stripes_in_flight(params.k * stored_shard_length(params.shard_size), BUFFER_BUDGET, workers)
    mark = time.perf_counter()
    try:
        with atomic_writer(out, mode=0o600) as handle, ThreadPoolExecutor(max_workers=workers) as pool, \
                Lanes(clients, lanes) as lane_pools:
            sink = DirectWriter(handle)  # the disk writes one stripe while the next decrypts
            try:
                restorer = _StripeRestorer(chain, requester, request_id, registration, placement, clients,
                                           lane_pools, shares, xs, result)
                pending: deque[Future[_Downloaded]] = deque()
                for stripe in range(params.stripes):
                    pending.append(pool.submit(restorer.download, stripe))
                    while len(pending) > workers:
                        result.bytes_written += _write(sink, pending.popleft(), restorer, progress)
                while pending:
                    result.bytes_written += _write(sink, pending.popleft(), restorer, progress)
                sink.finish()
            finally:
                sink.close()  # its buffers back, also when the restore failed
    finally:
        for client in clients.values():
            client.close()
    result.timings["shards"] = time.perf_counter() - mark
    if request.status == RequestStatus.APPROVED:
        chain.retrievals.complete(requester, request_id)
    result.timings["total"] = time.perf_counter() - started
    return result


def _write(sink: DirectWriter, future: Future[_Downloaded], restorer: _StripeRestorer,
           progress: Progress | None) -> int:
    downloaded = future.result()
    try:
        length = restorer.open(downloaded)
        sink.write(memoryview(restorer.plain)[:length])
    finally:
        restorer.release(downloaded)
    if progress is not None:
        progress(length)
    return length


@dataclass
class _Downloaded:
    """A stripe's verified shards by position, in buffers of the restorer's pool."""

    stripe: int
    ciphertexts: dict[int, memoryview]
    taken: list[bytearray]


class _StripeRestorer:
    """Downloads and verifies a stripe's shards (thread-safe), then decodes and decrypts it
    in the writer's thread."""

    def __init__(self, chain: ShardKeyChain, requester: LocalAccount, request_id: int,
                 registration: Registration, placement: Placement, clients: dict[str, HolderClient],
                 lanes: Lanes, shares: dict[int, dict[int, bytes]], xs: list[int], result: FetchResult):
        self.chain, self.requester, self.request_id = chain, requester, request_id
        self.placement, self.lanes = placement, lanes
        self.registration, self.clients, self.shares, self.xs = registration, clients, shares, xs
        self.result = result
        params = registration.params
        self.plain = bytearray(params.k * params.shard_size)  # a stripe's plaintext, the writer's only
        self._shard_buffers = Buffers(stored_shard_length(params.shard_size))
        self._tree: MerkleTree | None = None
        self._lock = threading.Lock()
        self._choosing = threading.Lock()

    def _key(self, index: int) -> bytes:
        return combine([Share(x, self.shares[x][index]) for x in self.xs])

    def download(self, stripe: int) -> _Downloaded:
        """The stripe's ``k`` shards, each checked against its registered hash (in a pool
        thread); the caller hands them to :meth:`open`, then to :meth:`release`."""
        params = self.registration.params
        m, k = params.m, params.k
        ciphertexts: dict[int, memoryview] = {}
        failures: list[str] = []
        taken: list[bytearray] = []
        try:
            tried: set[int] = set()
            while len(ciphertexts) < k and len(tried) < m:
                asked = self._ask_least_loaded(stripe, k - len(ciphertexts), tried, taken)
                wait([future for _, future in asked])
                for pos, future in asked:
                    data = self._verified(stripe * m + pos, future, failures)
                    if data is not None:
                        ciphertexts[pos] = data
            if len(ciphertexts) < k:
                raise RestoreError(f"stripe {stripe}: only {len(ciphertexts)} of {k} shards could be "
                                   "restored: " + "; ".join(failures))
        except BaseException:
            for buffer in taken:
                self._shard_buffers.give(buffer)
            raise
        return _Downloaded(stripe, ciphertexts, taken)

    def open(self, downloaded: _Downloaded) -> int:
        """Decode (if a data shard is missing) and decrypt a downloaded stripe into
        :attr:`plain`, in the writer's thread: one plaintext buffer for the whole fetch, so
        the memory of the stripes in flight is their shards only. Returns how many of its
        bytes belong to the file."""
        params = self.registration.params
        m, k, stripe = params.m, params.k, downloaded.stripe
        keys = {j: self._key(stripe * m + j) for j in range(k)}
        scratch = [self._shard_buffers.take() for j in range(k) if j not in downloaded.ciphertexts]
        downloaded.taken.extend(scratch)  # a missing data shard is rebuilt into a reused buffer
        try:
            size = open_stripe_into(keys, self.registration.dataset_id, stripe, downloaded.ciphertexts, k,
                                    params.p, self.plain, scratch)
        except CryptoError as exc:
            raise RestoreError(f"stripe {stripe}: {exc}") from None
        start, end = stripe_bounds(stripe, params.plaintext_length, k, params.shard_size)
        if size != k * params.shard_size:
            raise RestoreError(f"stripe {stripe}: decoded {size} bytes, expected {k * params.shard_size}")
        return end - start

    def release(self, downloaded: _Downloaded) -> None:
        """Give a stripe's shard buffers back for the stripes after it."""
        for buffer in downloaded.taken:
            self._shard_buffers.give(buffer)
        downloaded.taken.clear()

    def _ask_least_loaded(self, stripe: int, need: int, tried: set[int],
                          taken: list[bytearray]) -> list[tuple[int, Future[ServedShard]]]:
        """Ask for ``need`` of the stripe's shards not tried yet, from the holders with the
        least backlog, a parity position counting extra since reading it costs a decode: a
        whole set of lanes while shard requests are quick (the CPU is the limit: data shards
        are read, parity only where a data holder lags far behind), one request once they
        are slow (the links are the limit: the parity holders' links take an equal share;
        docs/PERFORMANCE.md, far holders)."""
        params = self.registration.params
        m, k = params.m, params.k
        took = self.lanes.call_seconds()
        parity_cost = 1 if took is not None and took >= SLOW_REQUEST else self.lanes.width
        with self._choosing:  # chosen and queued at once, so concurrent stripes see each other
            def load(pos: int) -> tuple[int, int]:
                holder = self.placement.holder(stripe * m + pos)
                return self.lanes.backlog(holder) + (parity_cost if pos >= k else 0), pos

            chosen = sorted((pos for pos in range(m) if pos not in tried), key=load)[:need]
            tried.update(chosen)
            asked = [(pos, self._ask(stripe * m + pos, taken)) for pos in chosen]
        parity = sum(1 for pos in chosen if pos >= k)
        if parity:
            with self._lock:
                self.result.parity_shards += parity
        return asked

    def _ask(self, index: int, taken: list[bytearray]) -> Future[ServedShard]:
        holder = self.placement.holder(index)
        buffer = self._shard_buffers.take()
        taken.append(buffer)
        return self.lanes.submit(holder, self.clients[holder].get_shard, self.registration.dataset_id, index,
                                 self.request_id, self.registration.params.shard_size, buffer)

    def _verified(self, index: int, future: Future[ServedShard], failures: list[str]) -> memoryview | None:
        """The shard's bytes if it came and matches its registered hash; else why not is
        noted (and a wrong shard proven on chain)."""
        holder = self.placement.holder(index)
        try:
            served = future.result()
        except HolderRequestError as exc:
            failures.append(str(exc))
            return None
        if not hmac.compare_digest(served.sha256, self.registration.shard_hashes[index]):
            failures.append(f"holder {holder}: shard {index} does not match its registered hash")
            self._prove(index, holder, served.sha256, served.receipt)
            return None
        return served.data

    def _prove(self, index: int, holder: str, served: bytes, receipt: bytes) -> None:
        self.result.bad_shards.append((index, holder))
        message = served_message(self.request_id, self.registration.dataset_id, index, served)
        try:
            signer = recover(self.chain.retrievals.domain, "ShardServed", message, receipt) if receipt else ""
        except Exception:  # eth-account raises several types for a malformed signature
            signer = ""
        kind = ReportKind.SHARD_PROOF
        if signer != holder:  # nothing provable; the shard is skipped all the same
            why = ("the holder sent no receipt" if not receipt
                   else "its receipt is not the holder's signature over this request and hash")
            self.result.reports.append(ChainReport(kind, holder, ReportOutcome.SKIPPED, why, index))
            return
        with self._lock:
            if self._tree is None:
                self._tree = MerkleTree.from_digests(list(self.registration.shard_hashes))
            proof = self._tree.proof(index)
        expected = self.registration.shard_hashes[index]
        retrievals = self.chain.retrievals
        self.result.reports.append(send_report(kind, holder, lambda: retrievals.report_shard_failure(
            self.requester, self.request_id, index, served, receipt, expected, proof), index))

