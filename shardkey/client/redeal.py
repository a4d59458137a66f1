"""``shardkey redeal``: move a dataset's shard keys to a new fragment-holder set.

The baseline re-deal of issue 13 (docs/DESIGN.md "Re-deal"): the owner asks for the keys
through ``requestRedeal`` (the same policy, attestation and approvals as any retrieval; the
audit trail shows purpose Redeal), collects and checks the fragments exactly as ``fetch``
does (:func:`shardkey.client.fetch.collect_fragments`), rebuilds each data shard key, splits
it afresh ``t'``-of-``n'`` for the new holders, wraps each new bundle under a fresh wrap key
exactly as ``store`` does (:func:`shardkey.client.store.send_bundle`: dealt to the KOS
committee's current epoch), uploads the bundles as fragment epoch ``latest + 1``, registers
the epoch (``redealFragments``, then ``registerDeal``) and waits until every new holder
confirmed custody (``FragmentEpochActivated``).
No shard is re-encrypted.

Resumable: the request id is kept beside its ephemeral key (``redeal-<dataset>.json``) until
the epoch is registered, so a re-run after a crash reuses an approved, unused request; once
an epoch is pending a re-run only waits for its activation (a pending committee epoch without its
deal, left by a crash or a refused ``registerDeal``, can never activate: a re-run re-deals again,
which supersedes it). Key material is zeroed after
use (the rebuilt keys are bytearrays wiped in ``finally``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime
from shardkey.chain.errors import ChainError
from shardkey.chain.model import (
    DatasetInfo,
    DatasetStatus,
    FragmentDeal,
    HolderStatus,
    RequestInfo,
    RequestPurpose,
    RequestStatus,
)
from shardkey.client.fetch import FetchResult, collect_fragments, request_deal, wait_for_approval
from shardkey.client.holder_http import HolderClient, unready_holders
from shardkey.client.kos_target import kos_target
from shardkey.client.retrieval import (
    RequestOutcome,
    SignedAttestation,
    forget_ephemeral_key,
    load_ephemeral_key,
    request_retrieval,
)
from shardkey.client.store import Rng, choose_holders, send_bundle
from shardkey.crypto.committee_envelope import dealt_committee_epoch
from shardkey.crypto.errors import CryptoError
from shardkey.crypto.shamir import Share, combine, split
from shardkey.errors import PolicyDenied, ShardKeyError, UsageError
from shardkey.fsutil import atomic_write_bytes


class RedealError(ShardKeyError):
    """The new fragment epoch did not become current (a new holder did not confirm)."""

    exit_code = 8


@dataclass
class RedealResult:
    """What a re-deal did."""

    dataset_id: bytes
    request_id: int
    epoch: int
    holders: tuple[str, ...]
    threshold: int
    resumed: bool = False  # a re-run that found the epoch pending and only waited
    old_holders: tuple[str, ...] = ()
    fetch: FetchResult | None = None  # the fragment collection's reports
    timings: dict[str, float] = field(default_factory=dict)


def _state_path(keys_dir: Path, dataset_id: bytes) -> Path:
    return keys_dir / f"redeal-{dataset_id.hex()}.json"


def _saved_request(chain: ShardKeyChain, keys_dir: Path, dataset: DatasetInfo) -> int | None:
    """The re-deal request a crashed run left, if it can still be used."""
    path = _state_path(keys_dir, dataset.dataset_id)
    try:
        request_id = int(json.loads(path.read_text())["request_id"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if not (keys_dir / f"{request_id}.hpke").is_file() or request_id > chain.retrievals.request_count():
        return None
    info = chain.retrievals.request(request_id)
    usable = (info.dataset_id == dataset.dataset_id and info.purpose == RequestPurpose.REDEAL
              and info.fragment_epoch == dataset.fragment_epoch
              and info.status in (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.COMPLETED)
              and not chain.datasets.redeal_used(request_id))
    return request_id if usable else None


def parse_holders(value: str) -> list[str] | None:
    """``--fragment-holders``: ``auto`` (None) or comma-separated addresses."""
    if value.strip().lower() == "auto":
        return None
    addresses = [a.strip() for a in value.split(",") if a.strip()]
    for address in addresses:
        if not is_address(address):
            raise UsageError(f"--fragment-holders: {address!r} is not an address (give addresses "
                             "separated by commas, or auto)")
    if len(set(a.lower() for a in addresses)) != len(addresses):
        raise UsageError("--fragment-holders: an address is listed twice")
    return [to_checksum_address(a) for a in addresses]


def choose_fragment_holders(chain: ShardKeyChain, given: Sequence[str] | None, n: int,
                            threshold: int) -> list[str]:
    """The new set: ``given`` (each must be Active and ready) or ``n`` Active holders that
    answer their health check, regions interleaved as ``store`` places them (Exiting, Failed
    and Retired holders never). A holder that is down would take no bundle after the policy
    approved the re-deal, so it is refused, or skipped, before anything is requested."""
    infos = list(chain.holders.every_holder().values())
    active = [h for h in infos if h.status == HolderStatus.ACTIVE]
    if given is None:
        unready = unready_holders({h.address: h.endpoint for h in active})
        ready = [h for h in active if h.address not in unready]
        if len(ready) < n and unready:
            raise UsageError(f"a re-deal to {n} holders needs {n} Active holders that answer; only "
                             f"{len(ready)} do ({_reasons(unready)}): bring them up, or pass --count")
        return choose_holders(ready, 1, n, threshold)[1]
    status = {h.address: h.status for h in infos}
    for address in given:
        if status.get(address) != HolderStatus.ACTIVE:
            state = status[address].name.lower() if address in status else "not registered"
            raise UsageError(f"--fragment-holders: {address} is {state}; only Active holders take "
                             "fragments ('shardkey holder list' shows them, or pass auto)")
    if not 1 <= threshold <= len(given) <= 255:
        raise UsageError(f"--threshold {threshold} needs 1 <= t <= fragment holders ({len(given)})")
    unready = unready_holders({h.address: h.endpoint for h in active if h.address in given})
    if unready:
        raise UsageError(f"--fragment-holders: {_reasons(unready)}; choose holders that are up "
                         "('shardkey holder list'), or pass auto")
    return list(given)


def _reasons(unready: dict[str, str]) -> str:
    return "; ".join(f"{address}: {why}" for address, why in sorted(unready.items()))


def redeal(chain: ShardKeyChain, owner: LocalAccount, dataset_id: bytes, keys_dir: Path, *,
           attestation: SignedAttestation | None = None, holders: Sequence[str] | None = None,
           n: int | None = None, threshold: int | None = None, timeout: float = 120.0,
           rng: Rng = os.urandom,
           on_request: Callable[[RequestOutcome], None] | None = None) -> RedealResult:
    """Re-deal ``dataset_id``'s shard keys to a new fragment set; see the module docstring."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    dataset = chain.datasets.dataset(dataset_id)
    if dataset.status == DatasetStatus.NONE:
        raise UsageError(f"dataset 0x{dataset_id.hex()} is not registered on this chain")
    if dataset.owner != owner.address:
        raise UsageError(f"dataset 0x{dataset_id.hex()} belongs to {dataset.owner}, not {owner.address}: "
                         "only the owner re-deals its fragments (--account)")
    if dataset.status != DatasetStatus.ACTIVE:
        raise UsageError(f"dataset 0x{dataset_id.hex()} is {dataset.status.name.lower()}: only an active "
                         "dataset is re-dealt")
    current, latest = chain.datasets.fragment_epochs(dataset_id)
    pending = (chain.datasets.fragment_deal(dataset_id, latest, chain.deployment.start_block)
               if latest > current else None)
    if pending is not None and not _deal_missing(chain, pending):
        # a run before this one registered the epoch: wait for it
        _wait_epoch(chain, dataset_id, latest, pending.holders, deadline)
        _state_path(keys_dir, dataset_id).unlink(missing_ok=True)
        return RedealResult(dataset_id, pending.redeal_request_id, latest, pending.holders,
                            pending.threshold, resumed=True,
                            timings={"total": time.perf_counter() - started})
    request_id = _saved_request(chain, keys_dir, dataset)
    if request_id is None:
        # the new set is checked before anything is requested (and chosen again once approved)
        now = chain.datasets.fragment_set(dataset_id)
        choose_fragment_holders(chain, holders, n if n is not None else len(now.holders),
                                threshold if threshold is not None else now.threshold)
        outcome = request_retrieval(chain, owner, dataset_id, attestation, keys_dir, redeal=True)
        if on_request is not None:
            on_request(outcome)
        if outcome.status == RequestStatus.DENIED:
            raise PolicyDenied(f"re-deal request {outcome.request_id} was denied: {outcome.state}")
        request_id = outcome.request_id
        atomic_write_bytes(_state_path(keys_dir, dataset_id),
                           json.dumps({"request_id": request_id}).encode(), mode=0o600)
    request = wait_for_approval(chain, request_id, deadline)
    result = _redeal_with(chain, owner, dataset, request, keys_dir, holders, n, threshold,
                          deadline, rng)
    result.timings["total"] = time.perf_counter() - started
    return result


def _redeal_with(chain: ShardKeyChain, owner: LocalAccount, dataset: DatasetInfo, request: RequestInfo,
                 keys_dir: Path, holders: Sequence[str] | None, n: int | None, threshold: int | None,
                 deadline: float, rng: Rng) -> RedealResult:
    dataset_id, request_id = dataset.dataset_id, request.request_id
    registration = chain.datasets.registration(dataset_id, chain.deployment.start_block)
    old = request_deal(chain, request, registration)
    t = threshold if threshold is not None else old.threshold
    new_holders = choose_fragment_holders(chain, holders, n if n is not None else len(old.holders), t)
    collected = FetchResult(request_id, 0, [])
    key = load_ephemeral_key(keys_dir, request_id)
    shares = collect_fragments(chain, owner, request, registration, old, key, deadline, collected)
    epoch = chain.datasets.fragment_epochs(dataset_id)[1] + 1
    fragments = _split_again(shares, sorted(shares)[: old.threshold], t, len(new_holders), rng)
    shares.clear()
    infos = chain.holders.holders_info(new_holders)
    endpoints = dict(zip(new_holders, (h.endpoint for h in infos), strict=True))
    clock = ChainTime.of(chain.client)
    clients = {a: HolderClient(a, endpoints[a], owner, clock) for a in new_holders}
    target = kos_target(chain)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            sent = [pool.submit(send_bundle, clients[h], dataset_id, j + 1, fragments[j], target, rng, epoch)
                    for j, h in enumerate(new_holders)]
            sealed_wraps, roots = zip(*(f.result() for f in sent), strict=True)
        chain.datasets.redeal_fragments(owner, dataset_id, request_id, new_holders, t, list(sealed_wraps),
                                        list(roots))
        try:
            target.register_deal(chain, owner, dataset_id, epoch, new_holders, rng)
        except (ChainError, CryptoError) as exc:
            raise RedealError(f"fragment epoch {epoch} of dataset 0x{dataset_id.hex()} is registered but its "
                              f"committee deal was refused ({exc}); it cannot activate: run 'shardkey "
                              "redeal' again (a new re-deal supersedes it)") from None
    finally:
        target.wipe()
        fragments.clear()
        for client in clients.values():
            client.close()
    if chain.retrievals.request(request_id).status == RequestStatus.APPROVED:
        chain.retrievals.complete(owner, request_id)
    forget_ephemeral_key(keys_dir, request_id)
    _state_path(keys_dir, dataset_id).unlink(missing_ok=True)
    _wait_epoch(chain, dataset_id, epoch, tuple(new_holders), deadline)
    return RedealResult(dataset_id, request_id, epoch, tuple(new_holders), t,
                        old_holders=old.holders, fetch=collected)


def _deal_missing(chain: ShardKeyChain, pending: FragmentDeal) -> bool:
    """Whether a pending fragment epoch is dealt to the committee but has no registered deal."""
    if dealt_committee_epoch(pending.sealed_wrap_keys) is None:
        return False
    return chain.committee.deal(pending.dataset_id, pending.epoch)[0] == 0


def _split_again(shares: dict[int, dict[int, bytes]], xs: list[int], t: int, n: int,
                 rng: Rng) -> list[dict[int, bytes]]:
    """Rebuild each data shard key from the old holders ``xs`` and split it ``t``-of-``n``;
    new position ``j`` (x = j + 1) gets ``fragments[j][index]``."""
    fragments: list[dict[int, bytes]] = [{} for _ in range(n)]
    for index in sorted(shares[xs[0]]):
        shard_key = bytearray(combine([Share(x, shares[x][index]) for x in xs]))
        try:
            for j, share in enumerate(split(bytes(shard_key), t, n, rng)):
                fragments[j][index] = share.value
        finally:
            shard_key[:] = bytes(len(shard_key))
    return fragments


def _wait_epoch(chain: ShardKeyChain, dataset_id: bytes, epoch: int, holders: Sequence[str],
                deadline: float) -> None:
    """Until ``epoch`` is current; else name the new holders that have not confirmed."""
    while time.monotonic() < deadline:
        current, _ = chain.datasets.fragment_epochs(dataset_id)
        if current >= epoch:
            return
        time.sleep(0.2)
    confirmed: set[str] = set()
    try:
        logs = chain.datasets.contract.get_logs("FragmentCustodyConfirmed", chain.deployment.start_block,
                                                datasetId=dataset_id, epoch=epoch)
        confirmed = {to_checksum_address(log.args["holder"]) for log in logs}
    except ChainError:
        pass
    missing = [h for h in holders if h not in confirmed]
    raise RedealError(f"fragment epoch {epoch} of dataset 0x{dataset_id.hex()} is registered but not "
                      f"yet current: no custody confirmation from {', '.join(missing) or 'none'}; run "
                      "'shardkey redeal' again to keep waiting (it finds the pending epoch)")

