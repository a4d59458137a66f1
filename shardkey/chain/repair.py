"""Bindings of the repair, exit and re-deal functions of the dataset registry.

Kept apart from :mod:`shardkey.chain.bindings` (which mixes :class:`DatasetRepair` into its
``DatasetRegistry``): shard placement overrides, pending assignments, released shards and
fragment epochs. docs/CONTRACTS.md, "Repair, exit and re-deal", has the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount

from shardkey.chain.codec import checksum
from shardkey.chain.connection import ChainClient
from shardkey.chain.contract import BoundContract
from shardkey.chain.errors import ChainError
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import FragmentDeal, FragmentSet, Registration
from shardkey.chain.placement import Placement
from shardkey.chain.rpc import Receipt as TxReceipt

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def deal_from_redeal_args(args: Any, block_number: int) -> FragmentDeal:
    """A :class:`FragmentDeal` from decoded ``FragmentsRedealt`` arguments."""
    return FragmentDeal(
        dataset_id=bytes(args["datasetId"]), epoch=int(args["epoch"]), threshold=int(args["threshold"]),
        holders=tuple(checksum(a) for a in args["fragmentHolders"]),
        sealed_wrap_keys=tuple(bytes(b) for b in args["sealedWrapKeys"]),
        fragment_roots=tuple(bytes(b) for b in args["fragmentRoots"]),
        block_number=block_number, redeal_request_id=int(args["redealRequestId"]))


def deal_from_registration(reg: Registration) -> FragmentDeal:
    """Fragment epoch 1: the registration's holders, threshold, wrap keys and roots."""
    return FragmentDeal(dataset_id=reg.dataset_id, epoch=1, threshold=reg.params.threshold,
                        holders=reg.params.fragment_holders, sealed_wrap_keys=reg.sealed_wrap_keys,
                        fragment_roots=reg.fragment_roots, block_number=reg.block_number)


class DatasetRepair:
    """Repair and re-deal calls of ``DatasetRegistry`` (mixed into its binding)."""

    client: ChainClient
    contract: BoundContract

    # reads
    def placement(self, registration: Registration, to_block: int | None = None) -> Placement:
        """The current holder of every shard (:mod:`shardkey.chain.placement`): the rule of
        the registration and every ``ShardRepaired`` since its block, in one keyed query."""
        return Placement.read(self.contract, registration.dataset_id, registration.params,
                              registration.block_number, to_block)

    def shard_holder_of(self, dataset_id: bytes, shard_index: int) -> str:
        """The holder of a shard now: the repaired one if a repair moved it, else the rule's."""
        return checksum(self.client.read(self.contract, "shardHolderOf", dataset_id, shard_index))

    def pending_shard_holder(self, dataset_id: bytes, shard_index: int) -> str | None:
        """The holder a shard is assigned to, pending its confirmation (None if none)."""
        holder = checksum(self.client.read(self.contract, "pendingShardHolder", dataset_id, shard_index))
        return None if holder == ZERO_ADDRESS else holder

    def shard_released(self, dataset_id: bytes, shard_index: int) -> bool:
        """Whether the shard's current holder said it lost it."""
        return bool(self.client.read(self.contract, "shardReleased", dataset_id, shard_index))

    def shards_held(self, dataset_id: bytes, holder: str) -> int:
        """How many shards of the dataset ``holder`` holds now (0: nothing left to repair away)."""
        return int(self.client.read(self.contract, "shardsHeld", dataset_id, checksum(holder)))

    def is_shard_holder(self, dataset_id: bytes, account: str) -> bool:
        """Listed at registration, or holding a repaired shard."""
        return bool(self.client.read(self.contract, "isShardHolder", dataset_id, checksum(account)))

    def is_fragment_holder(self, dataset_id: bytes, account: str) -> bool:
        """A fragment holder of the current epoch."""
        return bool(self.client.read(self.contract, "isFragmentHolder", dataset_id, checksum(account)))

    def fragment_epochs(self, dataset_id: bytes) -> tuple[int, int]:
        """(current, latest) fragment epoch; latest > current while a re-deal is pending."""
        current, latest = self.client.read(self.contract, "fragmentEpochs", dataset_id)
        return int(current), int(latest)

    def fragment_set(self, dataset_id: bytes, epoch: int | None = None) -> FragmentSet:
        """The holders and threshold of ``epoch`` (the current one when None)."""
        if epoch is None:
            epoch = self.fragment_epochs(dataset_id)[0]
        raw = self.client.read(self.contract, "fragmentSet", dataset_id, epoch)
        return FragmentSet(epoch=int(raw[0]), threshold=int(raw[1]), confirmations=int(raw[2]),
                           required=int(raw[3]), current=bool(raw[4]),
                           holders=tuple(checksum(a) for a in raw[5]))

    def redeal_used(self, request_id: int) -> bool:
        """Whether a re-deal consumed request ``request_id``."""
        return bool(self.client.read(self.contract, "redealUsed", request_id))

    def retrieval_coordinator(self) -> str | None:
        """The coordinator the registry trusts for re-deals and proofs (None until set)."""
        address = checksum(self.client.read(self.contract, "retrievalCoordinator"))
        return None if address == ZERO_ADDRESS else address

    def fragment_deal(self, dataset_id: bytes, epoch: int | None = None, from_block: int = 0) -> FragmentDeal:
        """The wrap keys, roots, holders and threshold of ``epoch`` (default: the current one):
        from ``DatasetRegistered`` for epoch 1, from ``FragmentsRedealt`` after a re-deal."""
        if epoch is None:
            epoch = self.fragment_epochs(dataset_id)[0]
        if epoch == 1:
            return deal_from_registration(self.registration(dataset_id, from_block))
        logs: list[ChainEvent] = self.contract.get_logs("FragmentsRedealt", from_block, datasetId=dataset_id,
                                                        epoch=epoch)
        if not logs:
            raise ChainError(f"no FragmentsRedealt event for epoch {epoch} of dataset 0x{dataset_id.hex()}")
        return deal_from_redeal_args(logs[-1].args, logs[-1].block_number)

    def registration(self, dataset_id: bytes, from_block: int = 0) -> Registration:
        """The ``DatasetRegistered`` event (implemented by ``DatasetRegistry``)."""
        raise NotImplementedError

    # writes
    def set_retrieval_coordinator(self, admin: LocalAccount, coordinator: str) -> TxReceipt:
        """Holder-registry admin, once: the coordinator whose re-deal requests and proofs count."""
        return self.client.send(self.contract.call("setRetrievalCoordinator", checksum(coordinator)), admin)

    def release_shard(self, holder: LocalAccount, dataset_id: bytes, shard_index: int) -> TxReceipt:
        """The shard's current holder says it lost it (the shard becomes repairable)."""
        return self.client.send(self.contract.call("releaseShard", dataset_id, shard_index), holder)

    def assign_shard(self, repairer: LocalAccount, dataset_id: bytes, shard_index: int,
                     new_holder: str) -> TxReceipt:
        """Owner or REPAIRER_ROLE: place a repairable shard on ``new_holder`` (pending)."""
        fn = self.contract.call("assignShard", dataset_id, shard_index, checksum(new_holder))
        return self.client.send(fn, repairer)

    def confirm_shard_placement(self, holder: LocalAccount, dataset_id: bytes, shard_index: int) -> TxReceipt:
        """The assigned holder, having checked the shard against its leaf, takes it over."""
        return self.client.send(self.contract.call("confirmShardPlacement", dataset_id, shard_index), holder)

    def redeal_fragments(self, owner: LocalAccount, dataset_id: bytes, redeal_request_id: int,
                         holders: Sequence[str], threshold: int, sealed_wrap_keys: Sequence[bytes],
                         fragment_roots: Sequence[bytes]) -> TxReceipt:
        """Owner: register the next fragment epoch (pending until every holder confirms)."""
        fn = self.contract.call("redealFragments", dataset_id, redeal_request_id,
                                [checksum(h) for h in holders], threshold, list(sealed_wrap_keys),
                                list(fragment_roots))
        return self.client.send(fn, owner)

    def confirm_fragment_custody(self, holder: LocalAccount, dataset_id: bytes, epoch: int) -> TxReceipt:
        """A holder of a pending epoch confirms it stores its new bundle."""
        return self.client.send(self.contract.call("confirmFragmentCustody", dataset_id, epoch), holder)
