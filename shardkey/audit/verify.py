"""``shardkey audit verify``: ask every holder for signed custody receipts and check them
against the registration event.

The receipts checked here are ``ShardReceipt`` custody proofs from the public ``/receipts``
(a holder re-reads each file at most once per stamp and re-hash period, docs/HOLDER_API.md).
They prove possession to an auditor; they are never accepted on chain, where only a
``ShardServed`` receipt bound to a request proves a wrong shard. The registration itself is
checked too: a Merkle root that does not commit to the published shard hashes is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime
from shardkey.chain.codec import checksum as to_checksum_address
from shardkey.chain.eip712 import receipt_message, recover
from shardkey.client.holder_http import HolderClient, HolderRequestError
from shardkey.crypto.merkle import root_commits_to


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
    """The registration's own consistency and every holder's custody proof."""

    root_ok: bool
    holders: list[HolderVerdict]

    @property
    def ok(self) -> bool:
        return self.root_ok and all(v.ok for v in self.holders)


def verify_dataset(chain: ShardKeyChain, dataset_id: bytes) -> DatasetVerdict:
    """Check the registered root against the published shard hashes, and every holder's
    custody receipts for ``dataset_id`` against the registration event."""
    registration = chain.datasets.registration(dataset_id, chain.deployment.start_block)
    params = registration.params
    root_ok = root_commits_to(params.merkle_root, registration.shard_hashes, params.shard_count)
    holders = list(dict.fromkeys(params.shard_holders + params.fragment_holders))
    clock = ChainTime.of(chain.client)
    verdicts = []
    for holder in holders:
        expected = [i for i in range(params.shard_count) if params.shard_holder(i) == holder]
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
            entry = receipts.get(index)
            if entry is None:
                verdict.missing.append(index)
                continue
            served = bytes.fromhex(str(entry["sha256"]).removeprefix("0x"))
            if served != registration.shard_hashes[index]:
                verdict.wrong.append(index)
                continue
            signature = bytes.fromhex(str(entry["signature"]).removeprefix("0x"))
            try:
                signer = recover(chain.retrievals.domain, "ShardReceipt",
                                 receipt_message(dataset_id, index, served), signature)
            except Exception:
                signer = ""
            if signer != to_checksum_address(holder):
                verdict.bad_signature.append(index)
                continue
            verdict.verified += 1
        if holder in params.fragment_holders:
            verdict.bundle_ok = bool(answer.get("bundle"))
        verdicts.append(verdict)
    return DatasetVerdict(root_ok, verdicts)
