"""Domain values read from the ShardKey contracts (plain dataclasses, no web3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_utils.crypto import keccak

from shardkey.chain.codec import checksum

# The policy's enum, re-exported: one DatasetStatus in the whole code base.
from shardkey.policy.context import DatasetStatus as DatasetStatus

# (dataset id, requester, keccak256 of the ephemeral key): what ties a stored request to
# the RetrievalRequested event that created it. Request ids are sequential, so after a
# reorg the same id can name another request; the ephemeral key is the requester's own.
# The contract stores only the key's hash; the key itself is in the event.
RequestOrigin = tuple[bytes, str, bytes]


def request_origin(args: Mapping[str, Any]) -> RequestOrigin:
    """The origin of a request from its ``RetrievalRequested`` event arguments."""
    return (bytes(args["datasetId"]), checksum(args["requester"]), keccak(bytes(args["ephemeralKey"])))


class HolderStatus(IntEnum):
    """``IHolderRegistry.HolderStatus`` (append-only: values never change)."""

    NONE = 0
    PENDING = 1
    ACTIVE = 2
    RETIRED = 3
    EXITING = 4  # announced its exit: never placed again, still serves what it holds
    FAILED = 5  # marked failed by the admin: its shards are repaired elsewhere


# The admin's holder transitions and the statuses each starts from, as HolderRegistry
# enforces them (tests/contracts/test_holder_registry.py checks every pair against the
# contract); the CLI pre-checks with this table so it never refuses what the chain allows.
ADMIN_HOLDER_TRANSITIONS: dict[str, frozenset[HolderStatus]] = {
    "activate": frozenset({HolderStatus.PENDING, HolderStatus.RETIRED, HolderStatus.FAILED}),
    "retire": frozenset({HolderStatus.PENDING, HolderStatus.ACTIVE, HolderStatus.EXITING,
                         HolderStatus.FAILED}),
    "fail": frozenset({HolderStatus.PENDING, HolderStatus.ACTIVE, HolderStatus.EXITING}),
}


class RequestStatus(IntEnum):
    NONE = 0
    PENDING = 1
    DENIED = 2
    APPROVED = 3
    COMPLETED = 4


class RequestPurpose(IntEnum):
    """Why a request was made (``requestRetrieval`` or the owner's ``requestRedeal``)."""

    RETRIEVAL = 0
    REDEAL = 1


class FragmentFailureKind(IntEnum):
    """A requester's claim about a fragment holder (``reportFragmentFailure``)."""

    WRONG = 1  # delivered fragments that did not verify against their commitments
    MISSING = 2  # delivered nothing before the request's deadline


@dataclass(frozen=True)
class HolderInfo:
    """A registered holder."""

    address: str
    status: HolderStatus
    lat_e6: int
    lon_e6: int
    registered_at: int
    hpke_public_key: bytes
    endpoint: str
    region: str


@dataclass(frozen=True)
class DatasetParams:
    """Coding and placement parameters of a dataset."""

    merkle_root: bytes
    k: int
    p: int
    shard_size: int
    plaintext_length: int
    shard_count: int
    threshold: int
    shard_holders: tuple[str, ...]
    fragment_holders: tuple[str, ...]

    @property
    def m(self) -> int:
        """Shards per stripe."""
        return self.k + self.p

    @property
    def stripes(self) -> int:
        """Number of stripes."""
        return self.shard_count // self.m

    def shard_holder(self, shard_index: int) -> str:
        """The holder that stores shard ``shard_index`` (placement rule)."""
        return self.shard_holders[shard_index % len(self.shard_holders)]

    def fragment_x(self, holder: str) -> int:
        """The Shamir x-coordinate of a fragment holder (position + 1)."""
        return self.fragment_holders.index(holder) + 1

    def as_abi(self) -> tuple[object, ...]:
        """The ``DatasetParams`` struct tuple."""
        return (self.merkle_root, self.k, self.p, self.shard_size, self.plaintext_length,
                self.shard_count, self.threshold, list(self.shard_holders),
                list(self.fragment_holders))


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as stored on chain."""

    dataset_id: bytes
    owner: str
    params: DatasetParams
    status: DatasetStatus
    policy_version: int
    confirmations: int
    required_confirmations: int
    registered_at: int
    fragment_epoch: int = 1  # current fragment epoch; params.fragment_holders are epoch 1's


@dataclass(frozen=True)
class FragmentSet:
    """The fragment holders of one epoch (``fragmentSet``): who holds the Shamir shares."""

    epoch: int
    threshold: int
    confirmations: int
    required: int
    current: bool
    holders: tuple[str, ...]

    def x(self, holder: str) -> int:
        """The Shamir x-coordinate of a fragment holder of this epoch (position + 1)."""
        return self.holders.index(holder) + 1


@dataclass(frozen=True)
class FragmentDeal:
    """The fragment data of one epoch, from ``DatasetRegistered`` (epoch 1) or
    ``FragmentsRedealt``: what the KOS and holders need to serve the current set."""

    dataset_id: bytes
    epoch: int
    threshold: int
    holders: tuple[str, ...]
    sealed_wrap_keys: tuple[bytes, ...]
    fragment_roots: tuple[bytes, ...]
    block_number: int
    redeal_request_id: int = 0  # 0 for epoch 1 (the registration)

    def x(self, holder: str) -> int:
        """The Shamir x-coordinate of a fragment holder of this epoch (position + 1)."""
        return self.holders.index(holder) + 1


@dataclass(frozen=True)
class Registration:
    """What the ``DatasetRegistered`` event carries (the audit and fetch record)."""

    dataset_id: bytes
    owner: str
    salt: bytes
    params: DatasetParams
    sealed_wrap_keys: tuple[bytes, ...]
    fragment_roots: tuple[bytes, ...]
    shard_hashes: tuple[bytes, ...]
    block_number: int


@dataclass(frozen=True)
class RequestInfo:
    """A retrieval request as stored on chain."""

    request_id: int
    dataset_id: bytes
    requester: str
    policy_version: int
    status: RequestStatus
    denial_reason: int
    requested_at: int
    approved_at: int
    deadline: int
    tokens_issued: int
    deliveries: int
    ephemeral_key_hash: bytes  # keccak256; the key is in the event (shardkey.chain.attestation)
    purpose: RequestPurpose = RequestPurpose.RETRIEVAL
    fragment_epoch: int = 1  # the dataset's fragment epoch when the request was made

    @property
    def origin(self) -> RequestOrigin:
        """Compare with :func:`request_origin` of an event to know it created this request."""
        return (self.dataset_id, self.requester, self.ephemeral_key_hash)


@dataclass(frozen=True)
class HolderView:
    """A request as one fragment holder sees it, read at one block
    (:meth:`~shardkey.chain.bindings.RetrievalCoordinator.holder_view`)."""

    delivered: bool
    is_open: bool
    token_issued: bool
    request: RequestInfo
