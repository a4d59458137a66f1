"""``shardkey store``: stream a file into encrypted shards at holders, register it on chain.

Pipeline (docs/DESIGN.md "Store", shard format v2): read the file stripe by stripe; encrypt
each of its ``k`` data blocks under a fresh key (STREAM AES-256-GCM); erasure-code the ``k``
ciphertexts into ``p`` parity shards; hash every shard; upload it to its placement holder;
split each data shard key t-of-n (parity shards have no key). Then wrap each fragment holder's bundle
under a fresh wrap key, register the dataset with the KOS committee's marker in each wrap key
slot, post ``registerDeal`` with the wrap keys split to the committee's current epoch
(:mod:`shardkey.client.kos_target`), and wait until every holder has confirmed custody. Work on
stripes runs in a thread pool (AES-GCM, SHA-256 and zfec release the GIL); uploads run
on every holder's transfer lanes at once (:mod:`shardkey.client.lanes`: a few keep-alive
connections per holder, so no shard waits for another's round trip). Memory stays bounded
by the stripes in flight (as many as :data:`BUFFER_BUDGET` bytes of buffers hold), whose
buffers are reused. A file that fits in one stripe of smaller shards is stored with them
(:func:`~shardkey.crypto.erasure.fitted_shard_size`). The file is read through a
:class:`~shardkey.bulkio.DropBehindReader`: the page cache is left as it was found.

If registration never becomes active (a holder did not confirm in time), or the committee deal
is refused, the dataset is revoked so nothing is left pending on chain, and the error names why.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from shardkey.bulkio import DropBehindReader
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime
from shardkey.chain.errors import ChainError
from shardkey.chain.model import DatasetParams, DatasetStatus, HolderInfo, HolderStatus
from shardkey.client.holder_http import HolderClient
from shardkey.client.kos_target import KosTarget, kos_target
from shardkey.client.lanes import Buffers, Lanes, results, stripes_in_flight
from shardkey.client.transport import LANES
from shardkey.crypto import (
    DEFAULT_SHARD_SIZE,
    FragmentBundle,
    fitted_shard_size,
    shard_count,
    split,
    stripe_count,
    validate_params,
    wrap_bundle,
)
from shardkey.crypto.errors import CryptoError
from shardkey.crypto.merkle import merkle_root
from shardkey.crypto.shamir import holder_fragments_root
from shardkey.crypto.stripe import seal_stripe_into, stored_shard_length
from shardkey.errors import ShardKeyError, UsageError
from shardkey.policy.model import Policy

Rng = Callable[[int], bytes]
Progress = Callable[[int], None]


BUFFER_BUDGET = 100 << 20  # bytes of stripe buffers (plaintext and sealed) in flight


class StoreError(ShardKeyError):
    """The dataset could not be stored; nothing usable was left on chain."""


@dataclass
class StoreOptions:
    """Coding parameters of a store."""

    k: int = 3
    p: int = 2
    shard_size: int = DEFAULT_SHARD_SIZE  # at most; see fitted_shard_size
    threshold: int = 3
    fragment_holders: int | None = None
    activation_timeout: float = 60.0
    workers: int = 6  # most stripes in flight (sealed in a pool of this many threads)
    lanes: int = LANES  # requests in flight per holder


@dataclass
class StoreResult:
    """What a store produced."""

    dataset_id: bytes
    params: DatasetParams
    tx_hash: str
    timings: dict[str, float] = field(default_factory=dict)


def compute_dataset_id(chain_id: int, registry: str, owner: str, salt: bytes) -> bytes:
    """``keccak256(abi.encode(chainid, registry, owner, salt))`` as the registry computes it."""
    return keccak(abi_encode(["uint256", "address", "address", "bytes32"],
                             [chain_id, registry, owner, salt]))


def choose_holders(holders: list[HolderInfo], m: int, n: int | None, t: int) -> tuple[list[str], list[str]]:
    """Shard holders (all active, regions interleaved) and the first ``n`` as fragment holders."""
    active = [h for h in holders if h.status == HolderStatus.ACTIVE]
    by_region: dict[str, list[HolderInfo]] = {}
    for holder in sorted(active, key=lambda h: h.address):
        by_region.setdefault(holder.region, []).append(holder)
    ordered: list[HolderInfo] = []
    queues = [deque(v) for _, v in sorted(by_region.items())]
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.popleft())
    if len(ordered) < m:
        raise UsageError(f"--data-shards + --parity = {m} needs at least {m} active holders; "
                         f"the registry has {len(ordered)}")
    n = n if n is not None else min(len(ordered), max(5, t))
    if not 1 <= t <= n <= min(len(ordered), 255):
        raise UsageError(f"--threshold {t} needs 1 <= t <= fragment holders ({n}) <= active holders "
                         f"({len(ordered)})")
    addresses = [h.address for h in ordered]
    return addresses[:255], addresses[:n]


def store_file(path: Path, policy: Policy, options: StoreOptions, owner: LocalAccount,
               chain: ShardKeyChain, rng: Rng = os.urandom, progress: Progress | None = None) -> StoreResult:
    """Store ``path`` under ``policy``; return the active dataset's id."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    validate_params(options.k, options.p, options.shard_size)
    try:
        length = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    shard_size = fitted_shard_size(length, options.k, options.shard_size)
    m = options.k + options.p
    options = replace(options, shard_size=shard_size, workers=stripes_in_flight(
        options.k * shard_size + m * stored_shard_length(shard_size), BUFFER_BUDGET, options.workers))
    deployment = chain.deployment
    target = kos_target(chain)
    policy.validate()
    holder_infos = chain.holders.holders_info(chain.holders.addresses())  # one batched round trip
    shard_holders, fragment_holders = choose_holders(holder_infos, m, options.fragment_holders,
                                                     options.threshold)
    endpoints = {h.address: h.endpoint for h in holder_infos}
    salt = rng(32)
    dataset_id = compute_dataset_id(chain.client.chain_id, deployment.dataset_registry, owner.address, salt)
    stripes = stripe_count(length, options.k, options.shard_size)
    total = shard_count(length, options.k, options.p, options.shard_size)
    clock = ChainTime.of(chain.client)
    clients = {a: HolderClient(a, endpoints[a], owner, clock, lanes=options.lanes)
               for a in dict.fromkeys(shard_holders + fragment_holders)}
    n = len(fragment_holders)
    fragments: list[dict[int, bytes]] = [{} for _ in range(n)]
    hashes: list[bytes] = [b""] * total
    timings["setup"] = time.perf_counter() - started
    stripe_job = _StripeJob(dataset_id, options, shard_holders, clients, n, rng)
    try:
        with ThreadPoolExecutor(max_workers=options.workers) as pool, \
                Lanes(clients, options.lanes) as lanes, path.open("rb", buffering=0) as source:
            stripe_job.lanes = lanes
            reader = DropBehindReader(source)  # a cold source leaves no pages behind it
            in_flight: deque[Future[list[tuple[int, bytes, list[bytes]]]]] = deque()
            for stripe in range(stripes):
                plain = stripe_job.plain.take()
                size = _read_full(reader, plain)
                in_flight.append(pool.submit(stripe_job.run, stripe, plain, size))
                while len(in_flight) >= options.workers:
                    _collect(in_flight.popleft(), hashes, fragments, progress)
            while in_flight:
                _collect(in_flight.popleft(), hashes, fragments, progress)
            timings["shards"] = time.perf_counter() - started - timings["setup"]
            bundles = [pool.submit(send_bundle, clients[holder], dataset_id, position + 1,
                                   fragments[position], target, rng)
                       for position, holder in enumerate(fragment_holders)]
            sealed_wraps, roots = zip(*(f.result() for f in bundles), strict=True)
        fragments.clear()
    except BaseException:
        target.wipe()
        raise
    finally:
        for client in clients.values():
            client.close()
    params = DatasetParams(merkle_root=merkle_root(hashes), k=options.k, p=options.p,
                           shard_size=options.shard_size, plaintext_length=length, shard_count=total,
                           threshold=options.threshold, shard_holders=tuple(shard_holders),
                           fragment_holders=tuple(fragment_holders))
    mark = time.perf_counter()
    try:
        receipt = chain.datasets.register(owner, salt, params, policy, hashes, list(sealed_wraps),
                                          list(roots))
    except BaseException:
        target.wipe()
        raise
    _register_deal(chain, owner, target, dataset_id, fragment_holders, rng)
    timings["register"] = time.perf_counter() - mark
    mark = time.perf_counter()
    _wait_active(chain, owner, dataset_id, options.activation_timeout)
    timings["activation"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    return StoreResult(dataset_id, params, "0x" + bytes(receipt["transactionHash"]).hex(), timings)


def _read_full(source: DropBehindReader, buffer: bytearray) -> int:
    """Fill ``buffer`` from ``source`` (short only at the end of the file); bytes read."""
    view = memoryview(buffer)
    at = 0
    while at < len(view):
        got = source.readinto(view[at:])
        if not got:
            break
        at += got
    return at


class _StripeJob:
    """Seals one stripe into a reused buffer, uploads its shards on their holders' lanes,
    and splits its data shard keys while they travel (thread-safe)."""

    def __init__(self, dataset_id: bytes, options: StoreOptions, shard_holders: list[str],
                 clients: dict[str, HolderClient], n: int, rng: Rng):
        self.dataset_id, self.options, self.shard_holders = dataset_id, options, shard_holders
        self.clients, self.n, self.rng = clients, n, rng
        self.lanes: Lanes | None = None
        self.plain = Buffers(options.k * options.shard_size)
        self.sealed = Buffers((options.k + options.p) * stored_shard_length(options.shard_size))

    def run(self, stripe: int, plain: bytearray, size: int) -> list[tuple[int, bytes, list[bytes]]]:
        """Return ``(index, digest, key shares)`` per shard (no shares for a parity shard:
        it has no key); ``plain`` (``size`` bytes of the file) is given back when done."""
        options, lanes = self.options, self.lanes
        assert lanes is not None
        k, m = options.k, options.k + options.p
        keys = [bytearray(self.rng(32)) for _ in range(k)]
        out = self.sealed.take()
        uploads: list[Future[None]] = []
        try:
            shards = seal_stripe_into([bytes(key) for key in keys], self.dataset_id, stripe,
                                      memoryview(plain)[:size], k, options.p, options.shard_size,
                                      self.rng, out)
            self.plain.give(plain)
            for position, (shard, digest) in enumerate(shards):
                index = stripe * m + position
                holder = self.shard_holders[index % len(self.shard_holders)]
                uploads.append(lanes.submit(holder, self.clients[holder].put_shard, self.dataset_id, index,
                                            shard, digest))
            result = []
            for position, (_, digest) in enumerate(shards):
                shares = (split(bytes(keys[position]), options.threshold, self.n, self.rng)
                          if position < k else [])
                result.append((stripe * m + position, digest, [s.value for s in shares]))
            results(uploads)
            return result
        finally:
            wait(uploads)  # none may still be reading ``out`` when it is reused
            self.sealed.give(out)
            for key in keys:
                key[:] = bytes(len(key))


def _register_deal(chain: ShardKeyChain, owner: LocalAccount, target: KosTarget, dataset_id: bytes,
                   fragment_holders: list[str], rng: Rng) -> None:
    """The committee deal of fragment epoch 1; refused, the dataset just registered is revoked
    and :class:`StoreError` says why."""
    try:
        target.register_deal(chain, owner, dataset_id, 1, fragment_holders, rng)
    except (ChainError, CryptoError) as exc:  # refused on chain, or a member key nothing seals to
        chain.datasets.revoke(owner, dataset_id)
        raise StoreError(f"the committee deal of dataset 0x{dataset_id.hex()} was refused ({exc}); the "
                         "dataset has been revoked (cancelled) on chain: store it again") from None


def send_bundle(client: HolderClient, dataset_id: bytes, x: int, fragments: dict[int, bytes],
                target: KosTarget, rng: Rng, epoch: int = 1) -> tuple[bytes, bytes]:
    """Wrap fragment holder ``x``'s bundle under a fresh key and upload it (for fragment
    epoch ``epoch``: a re-deal uploads the next one); return the registry slot for the wrap
    key (the committee marker: :meth:`KosTarget.slot`) and the bundle's fragments root."""
    wrap_key = bytearray(rng(32))
    try:
        bundle = FragmentBundle.build(dataset_id, x, fragments)
        client.put_bundle(dataset_id, wrap_bundle(bytes(wrap_key), bundle, rng), epoch)
        return target.slot(x - 1, wrap_key), holder_fragments_root(dataset_id, x, fragments)
    finally:
        wrap_key[:] = bytes(len(wrap_key))


def _collect(future: Future[list[tuple[int, bytes, list[bytes]]]], hashes: list[bytes],
             fragments: list[dict[int, bytes]], progress: Progress | None) -> None:
    for index, digest, shares in future.result():
        hashes[index] = digest
        for position, value in enumerate(shares):
            fragments[position][index] = value
    if progress is not None:
        progress(1)


def _wait_active(chain: ShardKeyChain, owner: LocalAccount, dataset_id: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = chain.datasets.dataset(dataset_id)
        if info.status == DatasetStatus.ACTIVE:
            return
        time.sleep(0.05)  # one cheap eth_call per poll; custody lands within a block or two
    missing = [h for h in dict.fromkeys(info.params.shard_holders + info.params.fragment_holders)
               if not chain.datasets.custody_confirmed(dataset_id, h)]
    chain.datasets.revoke(owner, dataset_id)
    raise StoreError(f"dataset 0x{dataset_id.hex()} was not confirmed within {timeout:.0f} s by "
                     f"{', '.join(missing)}; it has been revoked (cancelled) on chain")
