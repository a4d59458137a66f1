"""``shardkey audit verify``: ask every holder for signed receipts and check them on chain."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_utils import to_checksum_address

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.eip712 import receipt_message, recover
from shardkey.client.holder_http import ChainClock, HolderClient, HolderRequestError


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


def verify_dataset(chain: ShardKeyChain, dataset_id: bytes) -> list[HolderVerdict]:
    """Check every holder's receipts for ``dataset_id`` against the registration event."""
    registration = chain.datasets.registration(dataset_id, chain.deployment.start_block)
    params = registration.params
    holders = list(dict.fromkeys(params.shard_holders + params.fragment_holders))
    clock = ChainClock(chain.client.latest_timestamp)
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
        receipts = {int(r["index"]): r for r in answer.get("shards", [])}  # type: ignore[union-attr]
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
    return verdicts
