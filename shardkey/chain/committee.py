"""Bindings of the ``KosCommittee`` contract (threshold KOS) and the eth-account half of a
member's share envelope: signing its EIP-712 digest and recovering the signer.

The digest itself is pure (:func:`shardkey.crypto.committee_envelope.envelope_digest`); the
contract recomputes it (``shareDigest``). docs/CONTRACTS.md, "KosCommittee", has the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from eth_account.signers.local import LocalAccount
from eth_typing import Hash32

from shardkey.chain.attestation import ecdsa_signer
from shardkey.chain.codec import checksum
from shardkey.chain.connection import ChainClient
from shardkey.chain.errors import ChainError
from shardkey.chain.rpc import Receipt as TxReceipt
from shardkey.crypto.committee_envelope import ShareEnvelope, envelope_digest


class ShareFailureKind(IntEnum):
    """``IKosCommittee.ShareFailureKind`` (append-only)."""

    NONE = 0
    UNREADABLE = 1  # the sealed envelope did not open or decode
    BAD_SIGNATURE = 2  # its signature does not recover the member


@dataclass(frozen=True)
class CommitteeEpoch:
    """One committee epoch: member ``i`` (share x = i + 1), its HPKE public key, the threshold."""

    epoch: int
    members: tuple[str, ...]
    hpke_public_keys: tuple[bytes, ...]
    threshold: int

    def index_of(self, account: str) -> int:
        """The member index of ``account``; :class:`ChainError` if it is not a member."""
        try:
            return self.members.index(checksum(account))
        except ValueError:
            raise ChainError(f"{account} is not a member of committee epoch {self.epoch}") from None


def sign_envelope(member: LocalAccount, envelope: ShareEnvelope, chain_id: int,
                  committee: str) -> ShareEnvelope:
    """The envelope signed by ``member`` (65-byte r|s|v over its EIP-712 digest)."""
    if checksum("0x" + envelope.member.hex()) != checksum(member.address):
        raise ChainError(f"envelope names member 0x{envelope.member.hex()}, signer is {member.address}")
    signed = member.unsafe_sign_hash(Hash32(envelope_digest(envelope, chain_id, committee)))
    return envelope.signed(bytes(signed.signature))


def recover_signer(digest: bytes, signature: bytes) -> str | None:
    """The EOA that signed ``digest``, as strictly as OpenZeppelin's ``ECDSA.tryRecover`` (the
    contract's check: v 27 or 28, low s), or None: the ``recover`` callable of
    :func:`shardkey.crypto.committee.verify_share`."""
    return ecdsa_signer(digest, signature)


class KosCommittee:
    """The committee contract: epochs, members, keys, thresholds; share fault proofs."""

    def __init__(self, client: ChainClient, address: str):
        self.client = client
        self.contract = client.contract("KosCommittee", address)

    @property
    def address(self) -> str:
        """The contract's address (the EIP-712 verifying contract of share envelopes)."""
        return self.contract.address

    # reads
    def current_epoch(self) -> int:
        """The latest epoch (0 before the first)."""
        return int(self.client.read(self.contract, "currentEpoch"))

    def committee(self, epoch: int | None = None) -> CommitteeEpoch:
        """Members, keys and threshold of ``epoch`` (default: the current one)."""
        if epoch is None:
            epoch = self.current_epoch()
        members, keys, threshold = self.client.read(self.contract, "committee", epoch)
        return CommitteeEpoch(epoch=epoch, members=tuple(checksum(m) for m in members),
                              hpke_public_keys=tuple(bytes(k) for k in keys), threshold=int(threshold))

    def is_member(self, epoch: int, account: str) -> bool:
        """Whether ``account`` is a member of ``epoch``."""
        return bool(self.client.read(self.contract, "isMember", epoch, checksum(account)))

    def member_index(self, epoch: int, account: str) -> int:
        """The member index of ``account`` in ``epoch`` (reverts if it is not a member)."""
        return int(self.client.read(self.contract, "memberIndex", epoch, checksum(account)))

    def threshold(self, epoch: int) -> int:
        """t_k of ``epoch``."""
        return int(self.client.read(self.contract, "threshold", epoch))

    def share_digest(self, envelope: ShareEnvelope) -> bytes:
        """The contract's EIP-712 digest of ``envelope`` (equals the pure one)."""
        return bytes(self.client.read(self.contract, "shareDigest", envelope.as_tuple()))

    def share_commitment(self, dataset_id: bytes, holder: str, member_index: int, epoch: int,
                         share: bytes) -> bytes:
        """The contract's commitment (equals :func:`shardkey.crypto.committee.share_commitment`)."""
        return bytes(self.client.read(self.contract, "shareCommitment", dataset_id, checksum(holder),
                                      member_index, epoch, share))

    def share_fault_proven(self, request_id: int, member: str, holder: str) -> bool:
        """Whether ``holder`` proved ``member`` sent it a wrong share for ``request_id``."""
        return bool(self.client.read(self.contract, "shareFaultProven", request_id, checksum(member),
                                     checksum(holder)))

    # writes
    def start_epoch(self, admin: LocalAccount, members: Sequence[str], hpke_public_keys: Sequence[bytes],
                    threshold: int) -> TxReceipt:
        """Admin: start the next epoch with these members (in index order), keys and threshold."""
        fn = self.contract.call("startEpoch", [checksum(m) for m in members],
                                [bytes(k) for k in hpke_public_keys], threshold)
        return self.client.send(fn, admin)

    def prove_wrong_share(self, holder: LocalAccount, envelope: ShareEnvelope, commitment: bytes,
                          proof: Sequence[bytes], root: bytes) -> TxReceipt:
        """The envelope's fragment holder proves its member signed a share not matching
        ``commitment`` (``c[holder][member]`` under ``root``, with its Merkle ``proof``)."""
        fn = self.contract.call("proveWrongShare", envelope.as_tuple(), envelope.signature, commitment,
                                list(proof), root)
        return self.client.send(fn, holder)

    def report_share_failure(self, holder: LocalAccount, request_id: int, dataset_id: bytes, epoch: int,
                             member: str, kind: ShareFailureKind) -> TxReceipt:
        """The holder claims (unproven) that ``member``'s envelope for it failed as ``kind``."""
        fn = self.contract.call("reportShareFailure", request_id, dataset_id, epoch, checksum(member),
                                int(kind))
        return self.client.send(fn, holder)
