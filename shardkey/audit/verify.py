"""``shardkey audit verify``: ask every holder for signed custody receipts, check them
against the registration event, and report each stripe's health.

The receipts checked here are ``ShardReceipt`` custody proofs from the public ``/receipts``
(a holder re-reads each file at most once per stamp and re-hash period, docs/HOLDER_API.md).
They prove possession to an auditor; they are never accepted on chain, where only a
``ShardServed`` receipt bound to a request proves a wrong shard. The registration itself is
checked too: a Merkle root that does not commit to the published shard hashes is flagged.
Which holder should hold a shard is the chain's answer (``shardHolderOf``), read at one
block, so a shard the contract has placed elsewhere is asked of its new holder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shardkey.audit.health import DEFAULT_REPAIR_MARGIN, Health, ShardState, StripeHealth, stripe_health
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime
from shardkey.chain.codec import checksum as to_checksum_address
from shardkey.chain.eip712 import receipt_message, recover
from shardkey.client.holder_http import HolderClient, HolderRequestError
from shardkey.crypto.merkle import root_commits_to
from shardkey.errors import RestoreError


class StripesLostError(RestoreError):
    """At least one stripe has fewer than ``k`` good shards: the dataset cannot be restored."""

    exit_code = 6


@dataclass
class HolderVerdict:
    """What one holder proved about the shards it should hold."""

    holder: str
    expected: int
    verified: int = 0
    missing: list[int] = field(default_factory=list)
    wrong: list[int] = field(default_factory=list)
    bad_signature: list[int] = field(default_factory=list)
    bundle_ok: bool | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        failed = self.missing or self.wrong or self.bad_signature or self.error
        return not failed and self.bundle_ok is not False


@dataclass
class DatasetVerdict:
    """The registration's own consistency, every holder's custody proof, every stripe's health."""

    root_ok: bool
    holders: list[HolderVerdict]
    stripes: list[StripeHealth] = field(default_factory=list)
    repair_margin: int = DEFAULT_REPAIR_MARGIN

    @property
    def ok(self) -> bool:
        return self.root_ok and all(v.ok for v in self.holders)

    def count(self, health: Health) -> int:
        """How many stripes are in ``health``."""
        return sum(s.health == health for s in self.stripes)

    @property
    def lost(self) -> list[int]:
        """The stripes that can no longer be restored."""
        return [s.stripe for s in self.stripes if s.health == Health.LOST]


def verify_dataset(chain: ShardKeyChain, dataset_id: bytes,
                   repair_margin: int = DEFAULT_REPAIR_MARGIN) -> DatasetVerdict:
    """Check the registered root against the published shard hashes, every holder's custody
    receipts for ``dataset_id`` against the registration event, and grade every stripe."""
    registration = chain.datasets.registration(dataset_id, chain.deployment.start_block)
    params = registration.params
    root_ok = root_commits_to(params.merkle_root, registration.shard_hashes, params.shard_count)
    block = chain.client.block_number()
    placed: dict[str, list[int]] = {}
    for index, holder in enumerate(chain.datasets.placement(registration, block).holders):
        placed.setdefault(holder, []).append(index)
    # the current fragment epoch's holders, not the registration's: a re-deal moves them
    fragments = chain.datasets.fragment_set(dataset_id)
    holders = list(dict.fromkeys([*placed, *fragments.holders]))
    clock = ChainTime.of(chain.client)
    states: dict[int, ShardState] = {}
    verdicts = []
    for holder in holders:
        expected = placed.get(holder, [])
        verdict = HolderVerdict(holder, len(expected))
        client = HolderClient(holder, chain.holders.holder(holder).endpoint, None, clock)
        try:
            answer = client.receipts(dataset_id, len(expected))
        except HolderRequestError as exc:
            verdict.error = str(exc)
            verdict.missing = expected
            verdicts.append(verdict)
            continue
        finally:
            client.close()
        shards = answer.get("shards")
        receipts = {int(r["index"]): r for r in (shards if isinstance(shards, list) else [])
                    if isinstance(r, dict)}
        for index in expected:
            states[index] = _check_receipt(chain, dataset_id, holder, index,
                                           registration.shard_hashes[index], receipts.get(index), verdict)
        if holder in fragments.holders:
            epochs = answer.get("bundle_epochs")
            verdict.bundle_ok = isinstance(epochs, list) and fragments.epoch in epochs
        verdicts.append(verdict)
    health = stripe_health(states, params.k, params.p, params.shard_count, repair_margin)
    return DatasetVerdict(root_ok, verdicts, health, repair_margin)


def _check_receipt(chain: ShardKeyChain, dataset_id: bytes, holder: str, index: int, registered: bytes,
                   entry: dict[str, object] | None, verdict: HolderVerdict) -> ShardState:
    if entry is None:
        verdict.missing.append(index)
        return ShardState.MISSING
    served = bytes.fromhex(str(entry["sha256"]).removeprefix("0x"))
    if served != registered:
        verdict.wrong.append(index)
        return ShardState.BAD
    signature = bytes.fromhex(str(entry["signature"]).removeprefix("0x"))
    try:
        signer = recover(chain.retrievals.domain, "ShardReceipt", receipt_message(dataset_id, index, served),
                         signature)
    except Exception:  # eth-account raises several types for a malformed signature
        signer = ""
    if signer != to_checksum_address(holder):
        verdict.bad_signature.append(index)
        return ShardState.BAD
    verdict.verified += 1
    return ShardState.GOOD
