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

from shardkey.chain.attestation import ecdsa_signer
from shardkey.chain.codec import checksum
from shardkey.chain.connection import ChainClient, SentTx
from shardkey.chain.errors import ChainError
from shardkey.chain.events import ChainEvent
from shardkey.chain.rpc import Receipt as TxReceipt
from shardkey.crypto.committee_envelope import ShareEnvelope, envelope_digest
from shardkey.secp256k1 import sign_hash

# Gas a release or denial may need above its estimate when it lands after another member's:
# the threshold release issues a token per fragment holder (measured: about 28,500 each on top
# of the call, 142k for 5 holders), the deciding denial calls denyRequest (about 35k).
THRESHOLD_ISSUE_GAS = 40_000
TOKEN_GAS_PER_HOLDER = 40_000
DENY_REQUEST_GAS = 60_000


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


@dataclass(frozen=True)
class DealRecord:
    """The owner's deal of one fragment epoch to a committee epoch (a ``DealRegistered`` event).

    ``commitments`` and ``sealed_shares`` are in deal order: fragment holder ``j``, then member
    ``i`` (index ``j * m + i``); ``root`` is the contract's root over the commitments."""

    dataset_id: bytes
    fragment_epoch: int
    committee_epoch: int
    root: bytes
    commitments: tuple[bytes, ...]
    sealed_shares: tuple[bytes, ...]
    block_number: int

    def _index(self, holder_position: int, member_index: int, members: int) -> int:
        if members <= 0 or len(self.commitments) % members:
            raise ChainError(f"the deal of fragment epoch {self.fragment_epoch} has {len(self.commitments)} "
                             f"commitments: not a whole number of rows of {members} members")
        holders = len(self.commitments) // members
        if not 0 <= holder_position < holders or not 0 <= member_index < members:
            raise ChainError(f"share ({holder_position}, {member_index}) is outside the deal's "
                             f"{holders} fragment holders x {members} members")
        return holder_position * members + member_index

    def commitment(self, holder_position: int, member_index: int, members: int) -> bytes:
        """``c[j][i]``: the commitment of member ``member_index``'s share for holder ``holder_position``."""
        return self.commitments[self._index(holder_position, member_index, members)]

    def sealed_share(self, holder_position: int, member_index: int, members: int) -> bytes:
        """The share of holder ``holder_position``'s wrap key sealed to member ``member_index``."""
        return self.sealed_shares[self._index(holder_position, member_index, members)]


@dataclass(frozen=True)
class Release:
    """One member's answer to a request: a ``SharesReleased`` (``released``; ``sealed_envelopes[j]``
    for fragment holder ``j``) or a ``ReleaseDenied`` event (``reason``, a DenialReason)."""

    request_id: int
    dataset_id: bytes
    member: str
    released: bool
    reason: int
    sealed_envelopes: tuple[bytes, ...]
    block_number: int


def release_from_event(event: ChainEvent) -> Release:
    """A :class:`Release` from a decoded ``SharesReleased`` or ``ReleaseDenied`` event."""
    args = event.args
    released = event.name == "SharesReleased"
    if not released and event.name != "ReleaseDenied":
        raise ChainError(f"{event.name} is not a committee release event")
    return Release(request_id=int(args["requestId"]), dataset_id=bytes(args["datasetId"]),
                   member=checksum(args["member"]), released=released,
                   reason=0 if released else int(args["reason"]),
                   sealed_envelopes=tuple(bytes(b) for b in args["sealedEnvelopes"]) if released else (),
                   block_number=event.block_number)


def deal_from_event(event: ChainEvent) -> DealRecord:
    """A :class:`DealRecord` from a decoded ``DealRegistered`` event."""
    args = event.args
    return DealRecord(dataset_id=bytes(args["datasetId"]), fragment_epoch=int(args["fragmentEpoch"]),
                      committee_epoch=int(args["committeeEpoch"]), root=bytes(args["root"]),
                      commitments=tuple(bytes(c) for c in args["commitments"]),
                      sealed_shares=tuple(bytes(s) for s in args["sealedShares"]),
                      block_number=event.block_number)


def sign_envelope(member: LocalAccount, envelope: ShareEnvelope, chain_id: int,
                  committee: str) -> ShareEnvelope:
    """The envelope signed by ``member`` (65-byte r|s|v over its EIP-712 digest)."""
    if checksum("0x" + envelope.member.hex()) != checksum(member.address):
        raise ChainError(f"envelope names member 0x{envelope.member.hex()}, signer is {member.address}")
    return envelope.signed(sign_hash(member, envelope_digest(envelope, chain_id, committee)))


def recover_signer(digest: bytes, signature: bytes) -> str | None:
    """The EOA that signed ``digest``, as strictly as OpenZeppelin's ``ECDSA.tryRecover`` (the
    contract's check: v 27 or 28, low s), or None: the ``recover`` callable of
    :func:`shardkey.crypto.committee.verify_share`."""
    return ecdsa_signer(digest, signature)


class KosCommittee:
    """The committee contract: epochs, members, keys, thresholds; deals, releases, share fault proofs."""

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
                          proof: Sequence[bytes]) -> TxReceipt:
        """The envelope's fragment holder proves its member signed a share not matching
        ``commitment`` (``c[holder][member]`` with its Merkle ``proof`` to the root the contract
        stored for the request's deal)."""
        fn = self.contract.call("proveWrongShare", envelope.as_tuple(), envelope.signature, commitment,
                                list(proof))
        return self.client.send(fn, holder)

    def report_share_failure(self, holder: LocalAccount, request_id: int, dataset_id: bytes, epoch: int,
                             member: str, kind: ShareFailureKind) -> TxReceipt:
        """The holder claims (unproven) that ``member``'s envelope for it failed as ``kind``."""
        fn = self.contract.call("reportShareFailure", request_id, dataset_id, epoch, checksum(member),
                                int(kind))
        return self.client.send(fn, holder)

    # deals
    def register_deal(self, owner: LocalAccount, dataset_id: bytes, fragment_epoch: int,
                      commitments: Sequence[bytes], sealed_shares: Sequence[bytes]) -> TxReceipt:
        """Owner: deal pending fragment epoch ``fragment_epoch`` to the current committee epoch
        (both lists in deal order, holder ``j`` then member ``i``)."""
        fn = self.contract.call("registerDeal", dataset_id, fragment_epoch, [bytes(c) for c in commitments],
                                [bytes(s) for s in sealed_shares])
        return self.client.send(fn, owner)

    def deal(self, dataset_id: bytes, fragment_epoch: int) -> tuple[int, bytes]:
        """``(committee epoch, root)`` of the deal of a fragment epoch; ``(0, 32 zero bytes)`` if none."""
        epoch, root = self.client.read(self.contract, "deal", dataset_id, fragment_epoch)
        return int(epoch), bytes(root)

    def deal_record(self, dataset_id: bytes, fragment_epoch: int, from_block: int = 0) -> DealRecord:
        """The ``DealRegistered`` event of a fragment epoch (commitments, sealed shares);
        :class:`ChainError` if it was not dealt."""
        logs = self.contract.get_logs("DealRegistered", from_block, datasetId=dataset_id,
                                      fragmentEpoch=fragment_epoch)
        if not logs:
            raise ChainError(f"no committee deal of fragment epoch {fragment_epoch} of dataset "
                             f"0x{dataset_id.hex()} (from block {from_block})")
        return deal_from_event(logs[-1])

    # releases
    def submit_release(self, member: LocalAccount, request_id: int,
                       sealed_envelopes: Sequence[bytes]) -> SentTx:
        """Member: send ``releaseShares`` (one sealed envelope per fragment holder) without waiting."""
        fn = self.contract.call("releaseShares", request_id, [bytes(e) for e in sealed_envelopes])
        # estimated below the threshold, it may land as the release that reaches it (another
        # member's mined first) and then also issues the n tokens: room for that, or it runs out
        return self.client.submit(fn, member, extra_gas=THRESHOLD_ISSUE_GAS
                                  + TOKEN_GAS_PER_HOLDER * len(sealed_envelopes))

    def submit_denial(self, member: LocalAccount, request_id: int, reason: int) -> SentTx:
        """Member: send ``denyRelease`` with a DenialReason code without waiting."""
        # the denial that makes t_k releases impossible also denies the request on the coordinator
        return self.client.submit(self.contract.call("denyRelease", request_id, int(reason)), member,
                                  extra_gas=DENY_REQUEST_GAS)

    def release_state(self, request_id: int, member: str) -> int:
        """0: ``member`` did nothing for ``request_id`` yet, 1: released, 2: denied."""
        return self.release_states([request_id], member)[0]

    def release_states(self, request_ids: Sequence[int], member: str,
                       block: int | str = "latest") -> list[int]:
        """:meth:`release_state` of several requests at one block, in one round trip where the
        provider takes batches."""
        address = checksum(member)
        states = self.client.read_many(self.contract, "releaseState", [(r, address) for r in request_ids],
                                       block=block)
        return [int(state) for state in states]

    def release_counts(self, request_id: int) -> tuple[int, int]:
        """``(released, denied)`` so far for ``request_id``."""
        released, denied = self.client.read(self.contract, "releaseCounts", request_id)
        return int(released), int(denied)

    def releases(self, request_id: int, from_block: int = 0) -> list[Release]:
        """Every member's release or denial of ``request_id``, in chain order."""
        end = self.client.block_number()  # one range for both events
        events = [*self.contract.get_logs("SharesReleased", from_block, end, requestId=request_id),
                  *self.contract.get_logs("ReleaseDenied", from_block, end, requestId=request_id)]
        return [release_from_event(e) for e in sorted(events, key=lambda e: e.position)]
