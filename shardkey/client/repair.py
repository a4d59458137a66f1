"""``shardkey repair DATASET``: rebuild every repairable shard from ``k`` good ones and place
it on an Active holder of another region, without any key (shard format v2).

A shard is repairable when its current holder (the placement map,
:mod:`shardkey.chain.placement`) is not Active, released it (``ShardReleased``; a holder
also releases a copy it finds missing or corrupt when asked for it), or was proven on chain
to serve a wrong copy (``ShardIntegrityFailureProven``): the contract's ``assignShard``
rule. For each stripe with one: read good shards through the holders' repair endpoint
(each checked against its leaf; a bad or unreachable one is skipped and another read),
rebuild the missing ones (:func:`shardkey.crypto.rebuild_shards`), choose a target,
``assignShard``, upload (the holder checks the leaf and confirms), and check the chain
recorded the move.

Target: an Active holder not in the stripe whose region differs from every other holder of
the stripe (and from targets already chosen for it). When none exists the repair of that
shard is refused naming the regions in use, unless ``same_region`` allows any Active holder
not in the stripe. Targets answer their health check (``unready_holders``): nothing is
assigned to a holder that is down. Crash-safe: a shard already assigned
(``pendingShardHolder``) to an Active holder that answers is uploaded to that holder again
(never assigned twice); one whose pending holder is no longer Active, or does not answer,
is reassigned, and an upload that fails leaves the shard to the next run. Confirmation
moves the placement, so a re-run finds nothing left of what was done.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field

from eth_account.signers.local import LocalAccount

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime
from shardkey.chain.contract import BoundContract
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import DatasetStatus, HolderInfo, HolderStatus, Registration
from shardkey.chain.placement import Placement
from shardkey.client.holder_http import HolderClient, HolderRequestError, unready_holders
from shardkey.crypto import check_shard, rebuild_shards
from shardkey.crypto.errors import ShardIntegrityError
from shardkey.errors import ShardKeyError
from shardkey.faults import crash_point

log = logging.getLogger(__name__)

PROVEN_BAD = "proven bad"  # why a shard proven on chain to be served wrong is repairable


class RepairError(ShardKeyError):
    """A repair could not be done (not allowed, too few good shards, no target); exit 7."""

    exit_code = 7


@dataclass
class ShardRepair:
    """One shard's repair: why, from where, to where, and how far it got."""

    index: int
    stripe: int
    reason: str
    old_holder: str
    new_holder: str = ""
    state: str = "planned"  # planned, assigned (pending from an earlier run), repaired, refused
    detail: str = ""
    resumed: bool = False  # an earlier run's assignment was finished, not a new one made


@dataclass
class RepairResult:
    """What a repair run did (``--json``)."""

    dataset_id: str
    dry_run: bool
    shards: list[ShardRepair] = field(default_factory=list)
    stripes_repaired: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return asdict(self)

    @property
    def refused(self) -> list[ShardRepair]:
        return [s for s in self.shards if s.state == "refused"]


ShardMarks = tuple[frozenset[tuple[int, str]], frozenset[tuple[int, str]]]  # (released, proven bad)


def shard_marks(chain: ShardKeyChain, dataset_id: bytes, first: int,
                last: int | str = "latest") -> ShardMarks:
    """(shard index, holder) of every ``ShardReleased`` and every ``ShardIntegrityFailureProven``
    of a dataset in blocks ``first`` through ``last``."""
    def marks(contract: BoundContract, event: str) -> frozenset[tuple[int, str]]:
        return frozenset(shard_mark(e) for e in contract.get_logs(event, first, last, datasetId=dataset_id))
    return (marks(chain.datasets.contract, "ShardReleased"),
            marks(chain.retrievals.contract, "ShardIntegrityFailureProven"))


def shard_mark(event: ChainEvent) -> tuple[int, str]:
    """(shard index, holder) of a ``ShardReleased`` or ``ShardIntegrityFailureProven``."""
    return int(event.args["shardIndex"]), event.args["holder"]


def repairable_shards(chain: ShardKeyChain, registration: Registration, placement: Placement,
                      holders: dict[str, HolderInfo], marks: ShardMarks | None = None) -> dict[int, str]:
    """Shard index -> why it may be repaired (the contract's rule, read from the chain);
    ``marks``: the dataset's :func:`shard_marks` since its registration, when the caller
    keeps them (else they are read)."""
    ds = registration.dataset_id
    released, proven = marks if marks is not None else shard_marks(chain, ds, registration.block_number)
    out: dict[int, str] = {}
    for index, holder in enumerate(placement.holders):
        status = holders[holder].status if holder in holders else HolderStatus.NONE
        if status != HolderStatus.ACTIVE:
            out[index] = f"holder {status.name.lower()}"
        elif (index, holder) in released and chain.datasets.shard_released(ds, index):
            out[index] = "released"
        elif (index, holder) in proven:
            out[index] = PROVEN_BAD
    return out


def _choose(stripe_holders: list[str], holders: dict[str, HolderInfo], taken: set[str],
            same_region: bool, load: dict[str, int], unready: dict[str, str]) -> str:
    """An Active holder outside the stripe that answers its health check, of a region no
    other stripe holder has."""
    regions = {holders[h].region for h in taken if h in holders}
    candidates = [h for h, info in holders.items() if info.status == HolderStatus.ACTIVE and h not in taken
                  and h not in stripe_holders]
    outside = [h for h in candidates if h not in unready]
    fresh = [h for h in outside if holders[h].region not in regions]
    pool = fresh or (outside if same_region else [])
    if not pool:
        down = [f"{h}: {unready[h]}" for h in candidates if h in unready]
        raise RepairError(f"no Active holder outside the stripe in a region other than {sorted(regions)}"
                          f" ({len(outside)} Active holders outside it that answer, all in those regions"
                          + (f"; not answering: {'; '.join(down)}" if down else "") + "): register or "
                          "bring up a holder in another region, or run with --same-region to place it anyway")
    return min(pool, key=lambda h: (load.get(h, 0), h))


class Repairer:
    """Repairs one dataset as ``account`` (its owner or a REPAIRER_ROLE account)."""

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, same_region: bool = False,
                 timeout: float = 120.0, stop: threading.Event | None = None):
        self.chain, self.account, self.same_region, self.timeout = chain, account, same_region, timeout
        self.stop = stop  # when set, no new shard is started (the one under way is finished)
        self._clients: dict[str, HolderClient] = {}
        self._load: dict[str, int] = {}
        self._unready: dict[str, str] = {}  # Active holders that do not answer (this run)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, holder: str, holders: dict[str, HolderInfo]) -> HolderClient:
        if holder not in self._clients:
            self._clients[holder] = HolderClient(holder, holders[holder].endpoint, self.account,
                                                 ChainTime.of(self.chain.client))
        return self._clients[holder]

    def repair(self, dataset_id: bytes, dry_run: bool = False) -> RepairResult:
        """Repair every repairable shard of ``dataset_id`` (or, ``dry_run``, say the plan)."""
        started = time.perf_counter()
        chain = self.chain
        dataset = chain.datasets.dataset(dataset_id)
        if dataset.status != DatasetStatus.ACTIVE:
            raise RepairError(f"dataset 0x{dataset_id.hex()} is {dataset.status.name.lower()}, not Active:"
                              " only an Active dataset is repaired")
        me = self.account.address
        if me != dataset.owner and not chain.holders.is_repairer(me):
            raise RepairError(f"{me} is neither the dataset's owner nor holds REPAIRER_ROLE: run with the "
                              "owner's key (--as owner) or ask the registry admin to grant the role")
        registration = chain.datasets.registration(dataset_id, chain.deployment.start_block)
        placement = chain.datasets.placement(registration)
        holders = chain.holders.every_holder()
        todo = repairable_shards(chain, registration, placement, holders)
        if todo and not dry_run:
            self._unready = unready_holders({a: h.endpoint for a, h in holders.items()
                                             if h.status == HolderStatus.ACTIVE})
        result = RepairResult("0x" + dataset_id.hex(), dry_run)
        m = registration.params.m
        for stripe in sorted({i // m for i in todo}):
            if self._stopping():
                break
            wanted = {i: todo[i] for i in todo if i // m == stripe}
            self._repair_stripe(registration, placement, holders, stripe, wanted, dry_run, result)
        result.seconds = time.perf_counter() - started
        return result

    def _plan(self, registration: Registration, placement: Placement, holders: dict[str, HolderInfo],
              stripe: int, wanted: dict[int, str], result: RepairResult) -> list[ShardRepair]:
        ds, m = registration.dataset_id, registration.params.m
        stripe_holders = placement.stripe(stripe, m)
        taken = {h for i, h in enumerate(stripe_holders, stripe * m) if i not in wanted}
        plans = []
        for index in sorted(wanted):
            plan = ShardRepair(index, stripe, wanted[index], placement.holder(index))
            pending = self.chain.datasets.pending_shard_holder(ds, index)
            if pending is not None and holders.get(pending) is not None \
                    and holders[pending].status == HolderStatus.ACTIVE and pending not in self._unready:
                plan.new_holder, plan.state = pending, "assigned"
            else:
                if pending is not None:  # an earlier run's target left or does not answer: reassigned
                    plan.detail = f"reassigned from {pending} ({self._unready.get(pending, 'not Active')})"
                try:
                    plan.new_holder = _choose(stripe_holders, holders, taken, self.same_region, self._load,
                                              self._unready)
                except RepairError as exc:
                    plan.state, plan.detail = "refused", str(exc)
            if plan.new_holder:
                taken.add(plan.new_holder)
                self._load[plan.new_holder] = self._load.get(plan.new_holder, 0) + 1
            plans.append(plan)
            result.shards.append(plan)
        return plans

    def _repair_stripe(self, registration: Registration, placement: Placement,
                       holders: dict[str, HolderInfo], stripe: int, wanted: dict[int, str],
                       dry_run: bool, result: RepairResult) -> None:
        plans = self._plan(registration, placement, holders, stripe, wanted, result)
        doable = [p for p in plans if p.state != "refused"]
        if dry_run or not doable:
            return
        try:
            rebuilt = self._rebuild(registration, placement, holders, stripe, set(wanted), result)
        except RepairError as exc:  # this stripe cannot be rebuilt now; the others still are
            for plan in doable:
                plan.state, plan.detail = "refused", str(exc)
            return
        ds = registration.dataset_id
        for plan in doable:
            if self._stopping():
                return
            if plan.state == "assigned":
                plan.resumed = True
            else:
                self.chain.datasets.assign_shard(self.account, ds, plan.index, plan.new_holder)
                crash_point("repair.after_assign")
            data = rebuilt[plan.index]
            try:
                self._client(plan.new_holder, holders).put_repair_shard(
                    ds, plan.index, data, registration.shard_hashes[plan.index])
            except HolderRequestError as exc:
                # assigned but not taken: the next run reassigns it (the target is then unready)
                plan.state, plan.detail = "refused", f"upload to {plan.new_holder} failed: {exc}; run again"
                continue
            result.bytes_written += len(data)
            self._await_placement(ds, plan)
        result.stripes_repaired += 1

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _rebuild(self, registration: Registration, placement: Placement, holders: dict[str, HolderInfo],
                 stripe: int, lost: set[int], result: RepairResult) -> dict[int, bytes]:
        params, ds = registration.params, registration.dataset_id
        good: dict[int, bytes] = {}
        problems: list[str] = []
        for index in range(stripe * params.m, (stripe + 1) * params.m):
            if len(good) == params.k:
                break
            if index in lost:
                continue
            holder = placement.holder(index)
            try:
                data = self._client(holder, holders).get_repair_shard(ds, index, params.shard_size)
                result.bytes_read += len(data)
                check_shard(index, data, registration.shard_hashes[index])
            except (HolderRequestError, ShardIntegrityError, KeyError) as exc:
                problems.append(f"shard {index} at {holder}: {exc}")
                continue
            good[index] = data
        if len(good) < params.k:
            raise RepairError(f"stripe {stripe}: only {len(good)} of {params.k} good shards could be read; "
                              "it cannot be rebuilt now (" + "; ".join(problems) + ")")
        return rebuild_shards(good, params.k, params.p, lost, registration.shard_hashes)

    def _await_placement(self, dataset_id: bytes, plan: ShardRepair) -> None:
        """The holder confirms before answering; wait until the chain shows the move."""
        deadline = time.monotonic() + self.timeout
        while self.chain.datasets.shard_holder_of(dataset_id, plan.index) != plan.new_holder:
            if time.monotonic() > deadline:
                raise RepairError(f"shard {plan.index}: {plan.new_holder} took the upload but the chain "
                                  f"shows no placement after {self.timeout:.0f} s; run the repair again")
            time.sleep(0.2)
        plan.state = "repaired"
        log.info("shard repaired", extra={"fields": {"dataset": "0x" + dataset_id.hex(), "index": plan.index,
                                                     "from": plan.old_holder, "to": plan.new_holder}})


def repair_dataset(chain: ShardKeyChain, account: LocalAccount, dataset_id: bytes, dry_run: bool = False,
                   same_region: bool = False) -> RepairResult:
    """Repair one dataset (see the module docstring)."""
    repairer = Repairer(chain, account, same_region)
    try:
        return repairer.repair(dataset_id, dry_run)
    finally:
        repairer.close()
