"""Committee datasets at a fragment holder: collect the members' released shares, act on bad
ones, give the delivery path the wrap key; and the custody rule of a committee deal.

docs/DESIGN.md "Threshold KOS (committee)". The committee is the network's only KOS: a
fragment epoch is served only when every sealed wrap key of it is the committee marker of one
epoch (:func:`shardkey.crypto.committee_envelope.dealt_committee_epoch`); any other is not a
dataset this network serves (custody refused for good, requests not answered). The
``TokenIssued`` payload is the marker: it only says the threshold was reached; the wrap key
``w_j`` comes from ``t_k`` verified shares:

- ``SharesReleased`` for a request whose fragment epoch names this holder: every release of the
  request is read from chain and judged (:func:`holder_agent.shares.judge`). A share that is
  signed by its member but does not match its commitment is proven on chain
  (``proveWrongShare``, naming the member); an envelope that does not open or decode, or whose
  signature is bad, is claimed (``reportShareFailure``). Then the holder waits for another member.
- Verified shares stay in memory only (they are secret): after a restart they are judged again
  from the chain's envelopes. What must survive is the list of requests still waiting for
  shares and the claims already sent, in ``committee_requests.json``; the waiting requests are
  tried again after a restart and every ``RECHECK`` seconds.
- Custody: a holder confirms custody of a fragment epoch only once the owner's deal for it is
  registered (``KosCommittee.deal``) with the marker's committee epoch.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from holder_agent.shares import Judgement, ShareCollection, ShareContext, Verdict, judge
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.committee import CommitteeEpoch, KosCommittee, ShareFailureKind, recover_signer
from shardkey.chain.errors import ChainError, TransactionReverted
from shardkey.chain.model import RequestInfo
from shardkey.crypto.committee_envelope import dealt_committee_epoch
from shardkey.crypto.errors import CommitteeThresholdError
from shardkey.crypto.hpke import HpkePrivateKey, committee_release_info
from shardkey.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

RECHECK = 60.0  # seconds between two tries of a request still waiting for shares
MAX_REQUESTED = 4096  # requests whose RetrievalRequested block is remembered
FAULT_DONE = ("ShareFaultAlreadyRecorded",)  # the contract's "already done" answer to a claim/proof
REPORTED_KIND = {Verdict.UNREADABLE: ShareFailureKind.UNREADABLE,
                 Verdict.BAD_SIGNATURE: ShareFailureKind.BAD_SIGNATURE}


NOT_SERVED = ("its wrap-key slots are not the committee marker of one epoch: not a dataset this network "
              "serves (the KOS is the committee, which holds no single-key wrap keys)")


@dataclass(frozen=True)
class CustodyBlock:
    """Why custody of a fragment epoch is not confirmed now: ``final`` when never (not a
    committee fragment epoch), else it waits for the owner's deal."""

    reason: str
    final: bool


@dataclass
class _Waiting:
    """A request this holder collects shares for."""

    from_block: int
    claimed: dict[str, str] = field(default_factory=dict)  # member -> verdict sent on chain
    tried_at: float = 0.0


class CommitteeShares:
    """Share collection and the committee custody rule for one holder."""

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, hpke_key: HpkePrivateKey,
                 root: Path, start_block: int):
        self.chain, self.account, self.hpke_key = chain, account, hpke_key
        self.address = account.address
        self.start_block = start_block
        self.path = root / "committee_requests.json"
        self.waiting: dict[int, _Waiting] = {}
        self.collections: dict[int, ShareCollection] = {}  # in memory only: holds secrets
        self._modes: dict[tuple[bytes, int], int | None] = {}
        self._epochs: dict[int, CommitteeEpoch] = {}
        self._commitments: dict[tuple[bytes, int], tuple[bytes, ...]] = {}
        # The block of each recent request's RetrievalRequested, as the watcher saw it: its
        # releases are looked for from there, without searching the chain for the block.
        self._requested_in: OrderedDict[int, int] = OrderedDict()
        self._load()

    @property
    def committee(self) -> KosCommittee:
        """The deployment's committee contract (a committee dataset cannot exist without one)."""
        if self.chain.committee is None:
            raise ChainError("the deployment has no KosCommittee, but a dataset is sealed to a committee "
                             "(committee marker): add kos_committee to the deployment file")
        return self.chain.committee

    # --- mode and custody ------------------------------------------------------

    def mode(self, dataset_id: bytes, fragment_epoch: int,
             sealed_wrap_keys: Sequence[bytes] | None = None) -> int | None:
        """The committee epoch the fragment epoch is dealt to, None when it is not a committee
        fragment epoch: not one this network serves (cached: a fragment epoch's wrap keys never
        change)."""
        key = (bytes(dataset_id), fragment_epoch)
        if key not in self._modes:
            if sealed_wrap_keys is None:
                sealed_wrap_keys = self.chain.datasets.fragment_deal(dataset_id, fragment_epoch,
                                                                     self.start_block).sealed_wrap_keys
            self._modes[key] = dealt_committee_epoch(sealed_wrap_keys)
        return self._modes[key]

    def custody_problem(self, dataset_id: bytes, fragment_epoch: int,
                        sealed_wrap_keys: Sequence[bytes] | None = None) -> CustodyBlock | None:
        """Why custody of this fragment epoch is refused (not a committee one) or must wait (the
        owner's deal is not registered for the marker's epoch yet); None once the deal is in."""
        epoch = self.mode(dataset_id, fragment_epoch, sealed_wrap_keys)
        if epoch is None:
            return CustodyBlock(NOT_SERVED, final=True)
        dealt_epoch, root = self.committee.deal(dataset_id, fragment_epoch)
        if dealt_epoch == epoch and any(root):
            return None
        if dealt_epoch:
            return CustodyBlock(f"the owner's committee deal is for committee epoch {dealt_epoch}, the "
                                f"dataset's wrap-key slots name epoch {epoch}", final=False)
        return CustodyBlock(f"the owner's committee deal for fragment epoch {fragment_epoch} is not "
                            "registered yet", final=False)

    # --- collecting shares ----------------------------------------------------

    def context(self, request: RequestInfo) -> ShareContext | None:
        """What this holder judges the request's releases against; None when it is not a
        fragment holder of the request's epoch, or the epoch is not a committee one (not served)."""
        ds, fe = request.dataset_id, request.fragment_epoch
        fragment_set = self.chain.datasets.fragment_set(ds, fe)
        if self.address not in fragment_set.holders:
            return None
        epoch = self.mode(ds, fe)
        if epoch is None:
            return None
        if epoch not in self._epochs:
            self._epochs[epoch] = self.committee.committee(epoch)
        committee = self._epochs[epoch]
        if (ds, fe) not in self._commitments:
            record = self.committee.deal_record(ds, fe, self.start_block)
            self._commitments[(ds, fe)] = tuple(record.commitments)
        return ShareContext(chain_id=self.chain.client.chain_id, committee=self.committee.address,
                            request_id=request.request_id, dataset_id=ds, holders=fragment_set.holders,
                            position=fragment_set.holders.index(self.address), epoch=epoch,
                            members=committee.members, threshold=committee.threshold,
                            commitments=self._commitments[(ds, fe)])

    def collect(self, request: RequestInfo) -> ShareCollection | None:
        """Judge every release of ``request`` not judged yet; act on the bad ones. None when the
        request is not this holder's to collect."""
        rid = request.request_id
        ctx = self.context(request)
        if ctx is None:
            return None
        if rid not in self.waiting:
            first_block = self._requested_in.pop(rid, None)
            if first_block is None:  # not seen by this run's watcher (a restart): searched for
                first_block = self.chain.client.blocks_at(request.requested_at, self.start_block)[0]
            self.waiting[rid] = _Waiting(first_block)
            self._save()
        entry = self.waiting[rid]
        collection = self.collections.setdefault(rid, ShareCollection(ctx.threshold))
        chain_id = self.chain.client.chain_id
        for release in self.committee.releases(rid, entry.from_block):
            if not release.released or collection.seen(release.member):
                continue
            verdict = judge(ctx, release.member, release.sealed_envelopes, self.hpke_key.open,
                            lambda m: committee_release_info(chain_id, rid, ctx.dataset_id, self.address, m),
                            recover_signer)
            if verdict.verdict is not Verdict.VERIFIED:
                self._act_on(ctx, verdict, entry)  # a chain outage raises: judged again next time
            collection.add(verdict)
        entry.tried_at = time.monotonic()
        return collection

    def requested_in(self, request_id: int, block: int) -> None:
        """The request's ``RetrievalRequested`` was seen in ``block`` (the latest
        ``MAX_REQUESTED`` are kept)."""
        self._requested_in[request_id] = block
        while len(self._requested_in) > MAX_REQUESTED:
            self._requested_in.popitem(last=False)

    def ready(self, request: RequestInfo) -> bool:
        """Whether ``t_k`` verified shares of the request are in (judging new releases first)."""
        collection = self.collections.get(request.request_id)
        if collection is None or not collection.ready():
            collection = self.collect(request)
        return collection is not None and collection.ready()

    def wrap_key(self, request: RequestInfo) -> bytearray | None:
        """``w_j`` from ``t_k`` verified shares (the caller wipes it), or None while too few are in."""
        collection = self.collections.get(request.request_id)
        if collection is None or not collection.ready():
            collection = self.collect(request)
        if collection is None:
            return None
        try:
            return collection.wrap_key()
        except CommitteeThresholdError as exc:
            log.info("waiting for committee shares", extra={"fields": {
                "request": request.request_id, "detail": str(exc)}})
            return None

    def forget(self, request_id: int) -> None:
        """The request is answered or closed: drop its shares and its waiting entry."""
        collection = self.collections.pop(request_id, None)
        if collection is not None:
            collection.wipe()
        if self.waiting.pop(request_id, None) is not None:
            self._save()

    def due(self) -> list[int]:
        """Waiting requests not tried for ``RECHECK`` seconds (all of them after a restart)."""
        now = time.monotonic()
        return [rid for rid, e in self.waiting.items() if not e.tried_at or now - e.tried_at > RECHECK]

    def _act_on(self, ctx: ShareContext, judgement: Judgement, entry: _Waiting) -> None:
        fields = {"request": ctx.request_id, "dataset": "0x" + ctx.dataset_id.hex(),
                  "member": judgement.member, "verdict": judgement.verdict.value, "detail": judgement.detail}
        log.warning("committee share rejected; waiting for another member", extra={"fields": fields})
        if judgement.verdict is Verdict.UNSEALED:
            return  # this holder's own registered key is at fault, not the member
        if judgement.member in entry.claimed or judgement.member_index is None:
            return  # sent before (or not a member: nothing to claim about)
        committee = self.committee
        try:
            if judgement.verdict is Verdict.WRONG_SHARE and judgement.envelope is not None:
                if committee.share_fault_proven(ctx.request_id, judgement.member, self.address):
                    return
                receipt = committee.prove_wrong_share(self.account, judgement.envelope,
                                                      ctx.commitment(judgement.member_index),
                                                      ctx.proof(judgement.member_index))
                what = "wrong committee share proven on chain"
            else:
                receipt = committee.report_share_failure(self.account, ctx.request_id, ctx.dataset_id,
                                                         ctx.epoch, judgement.member,
                                                         REPORTED_KIND[judgement.verdict])
                what = "committee share failure claimed on chain"
        except TransactionReverted as exc:
            if exc.error not in FAULT_DONE:
                log.error("committee share fault not recorded",
                          extra={"fields": {**fields, "error": exc.error}})
                return
        else:
            log.warning(what, extra={"fields": {**fields,
                                                "tx": "0x" + bytes(receipt["transactionHash"]).hex()}})
        entry.claimed[judgement.member] = judgement.verdict.value
        self._save()

    def _save(self) -> None:
        data = {str(rid): {"from_block": e.from_block, "claimed": e.claimed}
                for rid, e in self.waiting.items()}
        atomic_write_bytes(self.path, json.dumps(data).encode())

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (ValueError, UnicodeDecodeError):
            log.error("committee_requests.json unreadable; waiting requests are found again from the "
                      "next SharesReleased events", extra={"fields": {"path": str(self.path)}})
            return
        for rid, entry in data.items():
            self.waiting[int(rid)] = _Waiting(int(entry["from_block"]),
                                              {str(k): str(v) for k, v in entry.get("claimed", {}).items()})


__all__ = ["NOT_SERVED", "CommitteeShares", "CustodyBlock"]
