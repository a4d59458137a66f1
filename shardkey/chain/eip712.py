"""EIP-712 typed data of the RetrievalCoordinator: approvals, location attestations,
shard receipts. Signing uses eth-account; the contract checks with SignatureChecker, so
EIP-1271 contract wallets can sign too (their owner signs the same digest).

Two shard receipt types, never interchangeable: ``ShardServed`` binds a served shard to the
request it was served under and is the only one ``reportShardFailure`` accepts;
``ShardReceipt`` is the custody proof of a holder's public ``/receipts`` (no request, so
anyone may ask for it, and it proves nothing on chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

DOMAIN_NAME = "ShardKey"
DOMAIN_VERSION = "1"

_TYPES: dict[str, list[dict[str, str]]] = {
    "Approval": [
        {"name": "requestId", "type": "uint256"},
        {"name": "datasetId", "type": "bytes32"},
        {"name": "requester", "type": "address"},
        {"name": "ephemeralKeyHash", "type": "bytes32"},
        {"name": "approver", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "LocationAttestation": [
        {"name": "requester", "type": "address"},
        {"name": "latE6", "type": "int32"},
        {"name": "lonE6", "type": "int32"},
        {"name": "accuracyM", "type": "uint32"},
        {"name": "issuedAt", "type": "uint64"},
        {"name": "nonce", "type": "bytes32"},
    ],
    "ShardReceipt": [
        {"name": "datasetId", "type": "bytes32"},
        {"name": "shardIndex", "type": "uint32"},
        {"name": "ciphertextHash", "type": "bytes32"},
    ],
    "ShardServed": [
        {"name": "requestId", "type": "uint256"},
        {"name": "datasetId", "type": "bytes32"},
        {"name": "shardIndex", "type": "uint32"},
        {"name": "ciphertextHash", "type": "bytes32"},
    ],
}


@dataclass(frozen=True)
class Domain:
    """The coordinator's EIP-712 domain."""

    chain_id: int
    coordinator: str

    def as_dict(self) -> dict[str, Any]:
        """The domain as eth-account expects it."""
        return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.chain_id,
                "verifyingContract": to_checksum_address(self.coordinator)}


def _signable(domain: Domain, primary: str, message: dict[str, Any]) -> Any:
    return encode_typed_data(full_message={
        "types": {"EIP712Domain": [
            {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"}],
            primary: _TYPES[primary]},
        "primaryType": primary, "domain": domain.as_dict(), "message": message})


def digest(domain: Domain, primary: str, message: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest of a message."""
    signable = _signable(domain, primary, message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign(domain: Domain, primary: str, message: dict[str, Any], signer: LocalAccount) -> bytes:
    """Sign a typed message; 65-byte r||s||v signature."""
    signed = signer.sign_message(_signable(domain, primary, message))
    return bytes(signed.signature)


def recover(domain: Domain, primary: str, message: dict[str, Any], signature: bytes) -> str:
    """Recover the EOA that signed a typed message (EIP-1271 wallets need an on-chain check)."""
    return str(Account.recover_message(_signable(domain, primary, message), signature=signature))


@dataclass(frozen=True)
class ApprovalSubject:
    """What an approval approves: the request id and the request's own fields.

    Binding dataset, requester and the ephemeral key hash stops an approval of request id N
    from counting for another request that got id N (ids are sequential; a reorg reassigns them).
    """

    request_id: int
    dataset_id: bytes
    requester: str
    ephemeral_key_hash: bytes

    @classmethod
    def of(cls, request_id: int, dataset_id: bytes, requester: str, ephemeral_key: bytes) -> ApprovalSubject:
        """The subject of a request with this dataset, requester and ephemeral public key."""
        return cls(request_id, bytes(dataset_id), to_checksum_address(requester),
                   keccak(bytes(ephemeral_key)))

    def as_tuple(self) -> tuple[int, bytes, str, bytes]:
        """The ``ApprovalSubject`` struct tuple for a contract call."""
        return (self.request_id, self.dataset_id, self.requester, self.ephemeral_key_hash)


def approval_message(subject: ApprovalSubject, approver: str, nonce: int, deadline: int) -> dict[str, Any]:
    """An ``Approval`` message for ``subject``."""
    return {"requestId": subject.request_id, "datasetId": subject.dataset_id,
            "requester": subject.requester, "ephemeralKeyHash": subject.ephemeral_key_hash,
            "approver": to_checksum_address(approver), "nonce": nonce, "deadline": deadline}


def attestation_message(requester: str, lat_e6: int, lon_e6: int, accuracy_m: int,
                        issued_at: int, nonce: bytes) -> dict[str, Any]:
    """A ``LocationAttestation`` message."""
    return {"requester": to_checksum_address(requester), "latE6": lat_e6, "lonE6": lon_e6,
            "accuracyM": accuracy_m, "issuedAt": issued_at, "nonce": nonce}


def receipt_message(dataset_id: bytes, shard_index: int, ciphertext_hash: bytes) -> dict[str, Any]:
    """A ``ShardReceipt`` message: a holder's custody proof of a shard (public ``/receipts``)."""
    return {"datasetId": dataset_id, "shardIndex": shard_index, "ciphertextHash": ciphertext_hash}


def served_message(request_id: int, dataset_id: bytes, shard_index: int,
                   ciphertext_hash: bytes) -> dict[str, Any]:
    """A ``ShardServed`` message: what a holder signs for a shard it serves under a request."""
    return {"requestId": request_id, "datasetId": dataset_id, "shardIndex": shard_index,
            "ciphertextHash": ciphertext_hash}
