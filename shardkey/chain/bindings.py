"""Typed bindings of the ShardKey contracts (registries, coordinator, KOS committee).

One class per contract. Reads return domain dataclasses (``shardkey.chain.model``);
writes take the signing account explicitly and return the receipt. ``ShardKeyChain``
bundles the three for a deployment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from shardkey.chain.codec import ZERO_ADDRESS as ZERO_ADDRESS  # re-exported (callers import it from here)
from shardkey.chain.codec import checksum as to_checksum_address  # cached EIP-55
from shardkey.chain.committee import KosCommittee
from shardkey.chain.connection import ChainClient, SentTx
from shardkey.chain.contract import BoundContract
from shardkey.chain.deployment import COMMITTEE, Deployment
from shardkey.chain.eip712 import ApprovalSubject, Domain
from shardkey.chain.errors import ChainError
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import (
    DatasetInfo,
    DatasetParams,
    DatasetStatus,
    FragmentFailureKind,
    HolderInfo,
    HolderStatus,
    HolderView,
    Registration,
    RequestInfo,
    RequestPurpose,
    RequestStatus,
)
from shardkey.chain.repair import DatasetRepair
from shardkey.chain.rpc import Receipt as TxReceipt
from shardkey.policy.model import Policy

KOS_ROLE = keccak(text="KOS_ROLE")
REPAIRER_ROLE = keccak(text="REPAIRER_ROLE")
FAILURE_PROVER_ROLE = keccak(text="FAILURE_PROVER_ROLE")
NO_ATTESTATION = (ZERO_ADDRESS, 0, 0, 0, 0, b"\0" * 32)


def _attestation(attestation: Sequence[Any] | None) -> tuple[Any, ...]:
    return tuple(attestation) if attestation is not None else NO_ATTESTATION


PARAM_FIELDS = ("merkleRoot", "k", "p", "shardSize", "plaintextLength", "shardCount", "threshold",
                 "shardHolders", "fragmentHolders")


def as_tuple(value: Any, fields: Sequence[str]) -> tuple[Any, ...]:
    """A struct as a tuple: calls return tuples, decoded events return name mappings."""
    if isinstance(value, Mapping):
        return tuple(value[f] for f in fields)
    return tuple(value)


def _params(value: Any) -> DatasetParams:
    raw = as_tuple(value, PARAM_FIELDS)
    return DatasetParams(
        merkle_root=bytes(raw[0]), k=int(raw[1]), p=int(raw[2]), shard_size=int(raw[3]),
        plaintext_length=int(raw[4]), shard_count=int(raw[5]), threshold=int(raw[6]),
        shard_holders=tuple(to_checksum_address(a) for a in raw[7]),
        fragment_holders=tuple(to_checksum_address(a) for a in raw[8]))


class HolderRegistry:
    """Holders: HPKE keys, endpoints, regions, status."""

    def __init__(self, client: ChainClient, address: str):
        self.client = client
        self.contract = client.contract("HolderRegistry", address)

    # reads
    def holder(self, address: str) -> HolderInfo:
        """The record of one holder."""
        return self.holders_info([address])[0]

    def holders_info(self, addresses: Sequence[str]) -> list[HolderInfo]:
        """The records of several holders, read in one round trip where the provider takes
        batched calls (:meth:`~shardkey.chain.connection.ChainClient.read_many`)."""
        checksummed = [to_checksum_address(a) for a in addresses]
        raws = self.client.read_many(self.contract, "getHolder", [(a,) for a in checksummed])
        return [HolderInfo(address=address, status=HolderStatus(raw[0]), lat_e6=int(raw[1]),
                           lon_e6=int(raw[2]), registered_at=int(raw[3]), hpke_public_key=bytes(raw[4]),
                           endpoint=str(raw[5]), region=str(raw[6]))
                for address, raw in zip(checksummed, raws, strict=True)]

    def addresses(self) -> list[str]:
        """Every holder ever registered."""
        return [to_checksum_address(a) for a in self.client.read(self.contract, "holders")]

    def every_holder(self) -> dict[str, HolderInfo]:
        """The record of every holder ever registered, by address, in one batched read."""
        return {h.address: h for h in self.holders_info(self.addresses())}

    def is_active(self, address: str) -> bool:
        """Whether a holder may be placed in new datasets."""
        return bool(self.client.read(self.contract, "isActive", to_checksum_address(address)))

    def is_admin(self, address: str) -> bool:
        """Whether ``address`` holds DEFAULT_ADMIN_ROLE (activates and retires holders)."""
        return bool(self.client.read(self.contract, "hasRole", bytes(32), to_checksum_address(address)))

    def is_repairer(self, address: str) -> bool:
        """Whether ``address`` holds REPAIRER_ROLE (may assign repaired shards of any dataset)."""
        return bool(self.client.read(self.contract, "isRepairer", to_checksum_address(address)))

    # writes
    def register(self, signer: LocalAccount, hpke_public_key: bytes, endpoint: str, region: str,
                 lat_e6: int, lon_e6: int) -> TxReceipt:
        """The signer registers itself as a holder."""
        fn = self.contract.call("registerHolder", hpke_public_key, endpoint, region, lat_e6, lon_e6)
        return self.client.send(fn, signer)

    def update(self, signer: LocalAccount, hpke_public_key: bytes, endpoint: str) -> TxReceipt:
        """The signer rotates its HPKE key and endpoint."""
        return self.client.send(self.contract.call("updateHolder", hpke_public_key, endpoint), signer)

    def activate(self, admin: LocalAccount, holder: str) -> TxReceipt:
        """Admin: allow a holder in new datasets."""
        return self.client.send(self.contract.call("activateHolder", to_checksum_address(holder)), admin)

    def retire(self, admin: LocalAccount, holder: str) -> TxReceipt:
        """Admin: keep a holder out of new datasets."""
        return self.client.send(self.contract.call("retireHolder", to_checksum_address(holder)), admin)

    def announce_exit(self, holder: LocalAccount) -> TxReceipt:
        """The signer (Active) announces it is leaving: Exiting, never placed again."""
        return self.client.send(self.contract.call("announceExit"), holder)

    def complete_exit(self, holder: LocalAccount) -> TxReceipt:
        """The signer (Exiting), holding nothing any more, retires itself."""
        return self.client.send(self.contract.call("completeExit"), holder)

    def mark_failed(self, admin: LocalAccount, holder: str) -> TxReceipt:
        """Admin: mark a holder Failed (its shards become repairable)."""
        return self.client.send(self.contract.call("markFailed", to_checksum_address(holder)), admin)

    def grant_repairer_role(self, admin: LocalAccount, account: str) -> TxReceipt:
        """Admin: let ``account`` assign repaired shards of any dataset."""
        fn = self.contract.call("grantRole", REPAIRER_ROLE, to_checksum_address(account))
        return self.client.send(fn, admin)

    def revoke_repairer_role(self, admin: LocalAccount, account: str) -> TxReceipt:
        """Admin: withdraw REPAIRER_ROLE from ``account``."""
        fn = self.contract.call("revokeRole", REPAIRER_ROLE, to_checksum_address(account))
        return self.client.send(fn, admin)

    def grant_failure_prover_role(self, admin: LocalAccount, coordinator: str) -> TxReceipt:
        """Admin (at deployment): let the RetrievalCoordinator fail a holder on proven failures."""
        fn = self.contract.call("grantRole", FAILURE_PROVER_ROLE, to_checksum_address(coordinator))
        return self.client.send(fn, admin)

    def proven_failures(self, holder: str) -> int:
        """How many distinct shards ``holder`` was proven on chain to serve wrong."""
        return int(self.client.read(self.contract, "provenFailures", to_checksum_address(holder)))


class DatasetRegistry(DatasetRepair):
    """Datasets, their policies, custody, repair and fragment epochs."""

    def __init__(self, client: ChainClient, address: str):
        self.client = client
        self.contract = client.contract("DatasetRegistry", address)

    # reads
    def compute_dataset_id(self, owner: str, salt: bytes) -> bytes:
        """The id a registration by ``owner`` with ``salt`` will get."""
        return bytes(self.client.read(self.contract, "computeDatasetId", to_checksum_address(owner), salt))

    def dataset(self, dataset_id: bytes) -> DatasetInfo:
        """The stored dataset (status None when unknown)."""
        raw = self.client.read(self.contract, "dataset", dataset_id)
        params = _params([raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[13], raw[14]])
        return DatasetInfo(dataset_id=dataset_id, owner=to_checksum_address(raw[0]), params=params,
                           status=DatasetStatus(raw[8]), policy_version=int(raw[9]),
                           confirmations=int(raw[10]), required_confirmations=int(raw[11]),
                           registered_at=int(raw[12]), fragment_epoch=int(raw[15]))

    def policy(self, dataset_id: bytes, version: int | None = None) -> Policy:
        """A policy version (the current one when ``version`` is None)."""
        if version is None:
            raw = self.client.read(self.contract, "currentPolicy", dataset_id)
        else:
            raw = self.client.read(self.contract, "policy", dataset_id, version)
        return Policy.from_abi_tuple(raw)

    def custody_confirmed(self, dataset_id: bytes, holder: str) -> bool:
        """Whether ``holder`` confirmed custody of the dataset."""
        return bool(self.client.read(self.contract, "custodyConfirmed", dataset_id,
                                     to_checksum_address(holder)))

    def shard_holder_of(self, dataset_id: bytes, shard_index: int, block: int | str = "latest") -> str:
        """The holder that stores shard ``shard_index`` (``shardHolderOf``: the placement of record)."""
        return to_checksum_address(self.client.read(self.contract, "shardHolderOf", dataset_id, shard_index,
                                                    block=block))

    def registration(self, dataset_id: bytes, from_block: int = 0) -> Registration:
        """The ``DatasetRegistered`` event of a dataset (its shard hashes, wrap keys, roots).

        Read from the blocks stamped with the dataset's ``registeredAt`` (a few queries),
        and from the whole history only when they do not hold it.
        """
        logs: list[ChainEvent] = []
        registered_at = self.dataset(dataset_id).registered_at
        if registered_at:
            first, last = self.client.blocks_at(registered_at, from_block)
            logs = self.contract.get_logs("DatasetRegistered", first, last, datasetId=dataset_id)
        if not logs:
            logs = self.contract.get_logs("DatasetRegistered", from_block, datasetId=dataset_id)
        if not logs:
            raise ChainError(f"no registration event for dataset 0x{dataset_id.hex()}")
        return registration_from_args(logs[-1].args, logs[-1].block_number)

    # writes
    def register(self, owner: LocalAccount, salt: bytes, params: DatasetParams, policy: Policy,
                 shard_hashes: Sequence[bytes], sealed_wrap_keys: Sequence[bytes],
                 fragment_roots: Sequence[bytes]) -> TxReceipt:
        """Register a dataset (status Pending until every holder confirms custody)."""
        fn = self.contract.call(
            "registerDataset",
            salt, params.as_abi(), policy.to_abi_tuple(), list(shard_hashes),
            list(sealed_wrap_keys), list(fragment_roots))
        return self.client.send(fn, owner)

    def confirm_custody(self, holder: LocalAccount, dataset_id: bytes) -> TxReceipt:
        """A holder confirms it stores its part of the dataset."""
        return self.client.send(self.contract.call("confirmCustody", dataset_id), holder)

    def update_policy(self, owner: LocalAccount, dataset_id: bytes, policy: Policy) -> TxReceipt:
        """The owner publishes a new policy version."""
        return self.client.send(
            self.contract.call("updatePolicy", dataset_id, policy.to_abi_tuple()), owner)

    def revoke(self, owner: LocalAccount, dataset_id: bytes) -> TxReceipt:
        """The owner revokes (or cancels) the dataset."""
        return self.client.send(self.contract.call("revokeDataset", dataset_id), owner)


def _request_info(request_id: int, raw: Any) -> RequestInfo:
    return RequestInfo(request_id=request_id, dataset_id=bytes(raw[0]),
                       requester=to_checksum_address(raw[1]), policy_version=int(raw[2]),
                       status=RequestStatus(raw[3]), denial_reason=int(raw[4]),
                       purpose=RequestPurpose(raw[5]), requested_at=int(raw[6]),
                       approved_at=int(raw[7]), deadline=int(raw[8]), tokens_issued=int(raw[9]),
                       deliveries=int(raw[10]), fragment_epoch=int(raw[11]),
                       ephemeral_key_hash=bytes(raw[12]))


def registration_from_args(args: Any, block_number: int) -> Registration:
    """Build a :class:`Registration` from decoded ``DatasetRegistered`` arguments."""
    return Registration(
        dataset_id=bytes(args["datasetId"]), owner=to_checksum_address(args["owner"]),
        salt=bytes(args["salt"]), params=_params(args["params"]),
        sealed_wrap_keys=tuple(bytes(b) for b in args["sealedWrapKeys"]),
        fragment_roots=tuple(bytes(b) for b in args["fragmentRoots"]),
        shard_hashes=tuple(bytes(b) for b in args["shardHashes"]), block_number=block_number)


class RetrievalCoordinator:
    """Requests, approvals, tokens, deliveries, completion and misbehaviour reports."""

    def __init__(self, client: ChainClient, address: str):
        self.client = client
        self.contract = client.contract("RetrievalCoordinator", address)
        self.domain = Domain(client.chain_id, address)

    # reads
    def request(self, request_id: int, block: int | str = "latest") -> RequestInfo:
        """The stored request (an unknown id reverts with RetrievalUnknownRequest)."""
        return self.requests([request_id], block)[0]

    def requests(self, request_ids: Sequence[int], block: int | str = "latest") -> list[RequestInfo]:
        """Several stored requests at one block, in one round trip where the provider takes
        batches; an unknown id reverts the whole read with RetrievalUnknownRequest."""
        raws = self.client.read_many(self.contract, "request", [(r,) for r in request_ids], block=block)
        return [_request_info(r, raw) for r, raw in zip(request_ids, raws, strict=True)]

    def holder_view(self, request_id: int, holder: str) -> HolderView:
        """What a fragment holder checks first of a request, read at one block in one round
        trip: whether it delivered, whether the request is open, whether it has its token,
        and the request (an unknown id reverts with RetrievalUnknownRequest)."""
        address = to_checksum_address(holder)
        delivered, is_open, token, raw = self.client.call_many([
            self.contract.call("delivered", request_id, address),
            self.contract.call("isOpen", request_id),
            self.contract.call("tokenIssued", request_id, address),
            self.contract.call("request", request_id)])
        return HolderView(bool(delivered), bool(is_open), bool(token), _request_info(request_id, raw))

    def is_admin(self, address: str) -> bool:
        """Whether ``address`` holds DEFAULT_ADMIN_ROLE (grants and revokes KOS_ROLE)."""
        return bool(self.client.read(self.contract, "hasRole", bytes(32), to_checksum_address(address)))

    def has_kos_role(self, account: str) -> bool:
        """Whether ``account`` holds KOS_ROLE (may issue tokens and denials)."""
        return bool(self.client.read(self.contract, "hasRole", KOS_ROLE, to_checksum_address(account)))

    def grant_kos_role(self, admin: LocalAccount, account: str) -> TxReceipt:
        """Admin: let ``account`` issue tokens and deny requests (only the KosCommittee should)."""
        fn = self.contract.call("grantRole", KOS_ROLE, to_checksum_address(account))
        return self.client.send(fn, admin)

    def revoke_kos_role(self, admin: LocalAccount, account: str) -> TxReceipt:
        """Admin: withdraw KOS_ROLE from ``account``."""
        fn = self.contract.call("revokeRole", KOS_ROLE, to_checksum_address(account))
        return self.client.send(fn, admin)

    def request_count(self) -> int:
        """Requests made so far (ids are 1..count)."""
        return int(self.client.read(self.contract, "requestCount"))

    def is_open(self, request_id: int) -> bool:
        """Approved, before its deadline, dataset not revoked."""
        return bool(self.client.read(self.contract, "isOpen", request_id))

    def token_issued(self, request_id: int, holder: str) -> bool:
        """Whether ``holder`` has its token for the request."""
        return bool(self.client.read(self.contract, "tokenIssued", request_id, to_checksum_address(holder)))

    def delivered(self, request_id: int, holder: str) -> bool:
        """Whether ``holder`` delivered for the request."""
        return bool(self.client.read(self.contract, "delivered", request_id, to_checksum_address(holder)))

    def has_approved(self, request_id: int, approver: str) -> bool:
        """Whether ``approver`` approved the request."""
        return bool(self.client.read(self.contract, "hasApproved", request_id, to_checksum_address(approver)))

    def shard_failure_proven(self, dataset_id: bytes, shard_index: int, served_hash: bytes) -> bool:
        """Whether a failure of this shard serving ``served_hash`` was proven (under any request)."""
        return bool(self.client.read(self.contract, "shardFailureProven", dataset_id, shard_index,
                                     served_hash))

    def shard_failure_proven_against(self, dataset_id: bytes, shard_index: int, holder: str) -> bool:
        """Whether ``holder``, as the shard's holder, was proven to serve a wrong copy of it."""
        return bool(self.client.read(self.contract, "shardFailureProvenAgainst", dataset_id, shard_index,
                                     to_checksum_address(holder)))

    def nonce_used(self, approver: str, nonce: int) -> bool:
        """Whether an EIP-712 approval nonce of ``approver`` is spent."""
        return bool(self.client.read(self.contract, "nonceUsed", to_checksum_address(approver), nonce))

    def check_policy(self, dataset_id: bytes, requester: str, attestation: Sequence[Any],
                     attestor: str, signature: bytes) -> int:
        """Preview the denial reason a request would get now (0 = none)."""
        return int(self.client.read(self.contract, "checkPolicy", dataset_id, to_checksum_address(requester),
                                    tuple(attestation), to_checksum_address(attestor), signature))

    # writes
    def request_retrieval(self, requester: LocalAccount, dataset_id: bytes, ephemeral_key: bytes,
                          attestation: Sequence[Any] | None = None, attestor: str = ZERO_ADDRESS,
                          signature: bytes = b"") -> TxReceipt:
        """Open a request; a policy failure is recorded as denied (not reverted)."""
        att = _attestation(attestation)
        fn = self.contract.call("requestRetrieval", dataset_id, ephemeral_key, att,
                                                      to_checksum_address(attestor), signature)
        return self.client.send(fn, requester)

    def request_redeal(self, owner: LocalAccount, dataset_id: bytes, ephemeral_key: bytes,
                       attestation: Sequence[Any] | None = None, attestor: str = ZERO_ADDRESS,
                       signature: bytes = b"") -> TxReceipt:
        """The owner's retrieval of the keys for a re-deal (same policy, purpose Redeal)."""
        att = _attestation(attestation)
        fn = self.contract.call("requestRedeal", dataset_id, ephemeral_key, att,
                                to_checksum_address(attestor), signature)
        return self.client.send(fn, owner)

    def approval_subject(self, request_id: int) -> ApprovalSubject:
        """What an approval of ``request_id`` must name: the stored request's fields."""
        info = self.request(request_id)
        return ApprovalSubject(request_id, info.dataset_id, info.requester, info.ephemeral_key_hash)

    def approve(self, approver: LocalAccount, subject: ApprovalSubject) -> TxReceipt:
        """The signer approves the request ``subject`` names (reverts if its fields differ)."""
        return self.client.send(self.contract.call("approve", subject.as_tuple()), approver)

    def approve_by_sig(self, relayer: LocalAccount, subject: ApprovalSubject, approver: str, nonce: int,
                       deadline: int, signature: bytes) -> TxReceipt:
        """Relay an EIP-712 approval of ``subject`` signed by ``approver``."""
        fn = self.contract.call("approveBySig", subject.as_tuple(), to_checksum_address(approver), nonce,
                                deadline, signature)
        return self.client.send(fn, relayer)

    def issue_tokens(self, kos: LocalAccount, request_id: int, holders: Sequence[str],
                     tokens: Sequence[bytes]) -> TxReceipt:
        """KOS: post unlock tokens in one transaction."""
        return self.client.wait(self.submit_tokens(kos, request_id, holders, tokens))

    def submit_tokens(self, kos: LocalAccount, request_id: int, holders: Sequence[str],
                      tokens: Sequence[bytes]) -> SentTx:
        """KOS: send the ``issueTokens`` transaction without waiting for it to be mined."""
        fn = self.contract.call(
            "issueTokens",
            request_id, [to_checksum_address(h) for h in holders], list(tokens))
        return self.client.submit(fn, kos)

    def deny(self, kos: LocalAccount, request_id: int, reason: int) -> TxReceipt:
        """KOS: deny a request with a reason code."""
        return self.client.wait(self.submit_denial(kos, request_id, reason))

    def submit_denial(self, kos: LocalAccount, request_id: int, reason: int) -> SentTx:
        """KOS: send the ``denyRequest`` transaction without waiting for it to be mined."""
        return self.client.submit(self.contract.call("denyRequest", request_id, reason), kos)

    def deliver(self, holder: LocalAccount, request_id: int, sealed: bytes) -> TxReceipt:
        """A fragment holder posts its fragments sealed to the requester."""
        return self.client.wait(self.submit_delivery(holder, request_id, sealed))

    def submit_delivery(self, holder: LocalAccount, request_id: int, sealed: bytes) -> SentTx:
        """Send the ``deliverFragments`` transaction without waiting for it to be mined."""
        return self.client.submit(self.contract.call("deliverFragments", request_id, sealed), holder)

    def complete(self, requester: LocalAccount, request_id: int) -> TxReceipt:
        """The requester marks the request complete."""
        return self.client.send(self.contract.call("completeRetrieval", request_id), requester)

    def report_shard_failure(self, requester: LocalAccount, request_id: int, shard_index: int,
                             served_hash: bytes, holder_signature: bytes, expected_hash: bytes,
                             proof: Sequence[bytes]) -> TxReceipt:
        """The requester of an open request proves that a holder served a shard that is not the
        committed one (``holder_signature``: its ``ShardServed`` receipt for this request)."""
        fn = self.contract.call(
            "reportShardFailure",
            request_id, shard_index, served_hash, holder_signature, expected_hash, list(proof))
        return self.client.send(fn, requester)

    def report_fragment_failure(self, requester: LocalAccount, request_id: int, holder: str,
                                kind: FragmentFailureKind) -> TxReceipt:
        """Claim that a holder with a token delivered wrong fragments, or none by the deadline."""
        fn = self.contract.call("reportFragmentFailure", request_id, to_checksum_address(holder), int(kind))
        return self.client.send(fn, requester)


class ShardKeyChain:
    """The four contracts of one deployment over one connection."""

    def __init__(self, deployment: Deployment, client: ChainClient | None = None):
        self.deployment = deployment
        self.client = client or ChainClient(deployment.urls)
        self.holders = HolderRegistry(self.client, deployment.holder_registry)
        self.datasets = DatasetRegistry(self.client, deployment.dataset_registry)
        self.retrievals = RetrievalCoordinator(self.client, deployment.retrieval_coordinator)
        self.committee = KosCommittee(self.client, deployment.kos_committee)

    @property
    def contracts(self) -> dict[str, BoundContract]:
        """The contracts by name (for the event watcher)."""
        return {"HolderRegistry": self.holders.contract, "DatasetRegistry": self.datasets.contract,
                "RetrievalCoordinator": self.retrievals.contract, COMMITTEE: self.committee.contract}


def bind(deployment: Deployment, max_fee_gwei: float | None = None) -> ShardKeyChain:
    """Bindings of ``deployment`` over every endpoint (fail-over), every transaction's max
    fee per gas capped at ``max_fee_gwei``: the one way the services and the CLI connect."""
    return ShardKeyChain(deployment, ChainClient(deployment.urls, max_fee_gwei=max_fee_gwei))
