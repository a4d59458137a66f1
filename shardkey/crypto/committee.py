"""Threshold KOS, pure part: the owner's deal of wrap keys to a committee, share commitments,
their Merkle root, and the checks a fragment holder makes on a member's signed share.

docs/DESIGN.md "Threshold KOS (committee)" has the design; docs/ARCHITECTURE.md the layouts.
Every hash here is one the ``KosCommittee`` contract recomputes (``abi.encode`` words):

- commitment  ``c[j][i] = keccak256(abi.encode(keccak256("shardkey/kos-share/v1"), uint256 chainId,
  bytes32 datasetId, address holder_j, uint8 memberIndex_i, uint64 epoch, bytes32 share))``;
- leaf        ``keccak256(keccak256(abi.encode(address holder_j, uint8 memberIndex_i, bytes32 c)))``
  (double hashed: a leaf is never the hash of 64 bytes, so an inner node cannot pose as one);
- root        :class:`~shardkey.crypto.merkle.MerkleTree` over the leaves in *deal order*:
  fragment holder position ``j`` first, then member index ``i`` (leaf ``j * m + i``).

Shares are Shamir over GF(2^8) (:mod:`shardkey.crypto.shamir`) with ``x = memberIndex + 1``.
Nothing here signs or recovers: the signature check is a ``recover(digest, signature)``
callable passed in (eth-account in :mod:`shardkey.chain.committee`), so this module needs no key.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from shardkey.crypto.committee_envelope import (
    ShareEnvelope,
    address_bytes,
    address_word,
    decode_envelope,
    envelope_digest,
    u64_word,
)
from shardkey.crypto.encoding import require_bytes, u256be
from shardkey.crypto.errors import (
    CommitteeInputError,
    CommitteeThresholdError,
    CryptoInputError,
    ShareCommitmentMismatch,
    ShareEnvelopeError,
    ShareSignatureError,
)
from shardkey.crypto.merkle import MerkleTree, verify_proof
from shardkey.crypto.shamir import MAX_SHARES, SHARE_LEN, Rng, Share, combine, split

COMMITMENT_DOMAIN = keccak(b"shardkey/kos-share/v1")

Recover = Callable[[bytes, bytes], str | None]
"""``recover(digest, signature)``: the address that signed ``digest``, or None if none did."""


def _member_index(index: int, members: int = MAX_SHARES) -> int:
    if not isinstance(index, int) or not 0 <= index < min(members, MAX_SHARES):
        raise CommitteeInputError(f"member index must be in 0..{min(members, MAX_SHARES) - 1}, got {index!r}")
    return index


def share_commitment(chain_id: int, dataset_id: bytes, holder: bytes | str, member_index: int, epoch: int,
                     share: bytes) -> bytes:
    """``c[j][i]``: the commitment to member ``member_index``'s share of ``holder``'s wrap key."""
    return keccak(COMMITMENT_DOMAIN + u256be(chain_id, "chain_id")
                  + require_bytes(dataset_id, 32, "dataset_id") + address_word(holder, "holder")
                  + u256be(_member_index(member_index), "member_index")
                  + u64_word(epoch, "epoch") + require_bytes(share, SHARE_LEN, "share"))


def commitment_leaf(holder: bytes | str, member_index: int, commitment: bytes) -> bytes:
    """The Merkle leaf of ``c[j][i]``, binding its fragment holder and member index."""
    inner = keccak(address_word(holder, "holder") + u256be(_member_index(member_index), "member_index")
                   + require_bytes(commitment, 32, "commitment"))
    return keccak(inner)


@dataclass(frozen=True)
class CommitteeDeal:
    """One dataset's wrap keys split to one committee epoch.

    ``shares[j][i]`` is SECRET (member ``i``'s share of holder ``j``'s wrap key; seal it to member
    ``i`` and drop it). ``commitments`` and ``root`` are public: the commitments travel in the
    registration event (flattened in deal order), the root is registered with the dataset.
    """

    chain_id: int
    dataset_id: bytes
    epoch: int
    threshold: int
    holders: tuple[bytes, ...]
    shares: tuple[tuple[bytes, ...], ...]
    commitments: tuple[tuple[bytes, ...], ...]
    root: bytes

    @property
    def members(self) -> int:
        """Committee size ``m``."""
        return len(self.commitments[0])

    def flat_commitments(self) -> list[bytes]:
        """Every commitment in deal order (holder ``j`` then member ``i``): the event's list."""
        return [c for row in self.commitments for c in row]

    def proof(self, holder_position: int, member_index: int) -> list[bytes]:
        """Merkle proof of ``c[holder_position][member_index]`` in :attr:`root`."""
        return commitment_proof(self.holders, self.commitments, holder_position, member_index)

    def __repr__(self) -> str:
        return (f"CommitteeDeal(dataset=0x{self.dataset_id.hex()[:16]}.., epoch={self.epoch}, "
                f"t={self.threshold}, holders={len(self.holders)}, members={self.members}, shares=<secret>)")


def _check_params(threshold: int, members: int) -> None:
    if not isinstance(members, int) or not 1 <= members <= MAX_SHARES:
        raise CommitteeInputError(f"committee size must be in 1..{MAX_SHARES}, got {members!r}")
    if not isinstance(threshold, int) or not 1 <= threshold <= members:
        raise CommitteeInputError(f"committee threshold must be in 1..{members} (the committee size), "
                                  f"got {threshold!r}")


def _tree(holders: Sequence[bytes], commitments: Sequence[Sequence[bytes]]) -> MerkleTree:
    if len(holders) != len(commitments) or not holders:
        raise CommitteeInputError(f"need one commitment row per fragment holder: {len(holders)} holders, "
                                  f"{len(commitments)} rows")
    width = len(commitments[0])
    leaves: list[bytes] = []
    for j, (holder, row) in enumerate(zip(holders, commitments, strict=True)):
        if len(row) != width:
            raise CommitteeInputError(f"commitment row {j} has {len(row)} entries, row 0 has {width}")
        leaves.extend(commitment_leaf(holder, i, c) for i, c in enumerate(row))
    return MerkleTree(leaves)


def commitments_root(holders: Sequence[bytes | str], commitments: Sequence[Sequence[bytes]]) -> bytes:
    """Root over ``commitments[j][i]`` in deal order (what a holder or auditor recomputes from
    the event's list to check the registered root)."""
    return _tree([_address(h) for h in holders], commitments).root


def commitment_rows(flat: Sequence[bytes], holders: int, members: int) -> list[list[bytes]]:
    """The event's flat commitment list as ``rows[j][i]``; it must hold exactly
    ``holders * members`` 32-byte entries (a list that does not is a wrong deal)."""
    if len(flat) != holders * members:
        raise CommitteeInputError(f"the deal lists {len(flat)} share commitments, {holders} fragment "
                                  f"holders x {members} members = {holders * members} expected")
    items = [require_bytes(c, 32, f"commitment #{k}", CommitteeInputError) for k, c in enumerate(flat)]
    return [items[j * members:(j + 1) * members] for j in range(holders)]


def commitment_proof(holders: Sequence[bytes | str], commitments: Sequence[Sequence[bytes]],
                     holder_position: int, member_index: int) -> list[bytes]:
    """Merkle proof of ``c[holder_position][member_index]`` (for ``proveWrongShare``)."""
    width = len(commitments[0]) if commitments else 0
    if not 0 <= holder_position < len(holders):
        raise CommitteeInputError(f"holder position {holder_position} out of range 0..{len(holders) - 1}")
    _member_index(member_index, width)
    return _tree([_address(h) for h in holders], commitments).proof(holder_position * width + member_index)


def verify_commitment_proof(holder: bytes | str, member_index: int, commitment: bytes, proof: Sequence[bytes],
                            root: bytes) -> bool:
    """Whether ``commitment`` is ``c[holder][member_index]`` under ``root``."""
    return verify_proof(proof, root, commitment_leaf(holder, member_index, commitment))


def _address(value: bytes | str) -> bytes:
    return address_bytes(value, "holder")


def deal(chain_id: int, dataset_id: bytes, epoch: int, holders: Sequence[bytes | str],
         wrap_keys: Sequence[bytes], threshold: int, members: int, rng: Rng) -> CommitteeDeal:
    """Split each holder's wrap key ``threshold`` of ``members`` and commit to every share.

    ``holders[j]`` is fragment holder ``j`` (20-byte address or hex), ``wrap_keys[j]`` its 32-byte
    wrap key; ``rng(k)`` returns ``k`` uniform bytes (``os.urandom`` in production).
    """
    _check_params(threshold, members)
    if len(holders) != len(wrap_keys) or not holders:
        raise CommitteeInputError(f"need one wrap key per fragment holder: {len(holders)} holders, "
                                  f"{len(wrap_keys)} wrap keys")
    addrs = tuple(_address(h) for h in holders)
    if len(set(addrs)) != len(addrs):
        raise CommitteeInputError("fragment holders must be distinct")
    require_bytes(dataset_id, 32, "dataset_id")
    shares: list[tuple[bytes, ...]] = []
    commitments: list[tuple[bytes, ...]] = []
    for j, (holder, key) in enumerate(zip(addrs, wrap_keys, strict=True)):
        secret = require_bytes(key, SHARE_LEN, f"wrap key of fragment holder {j}")
        row = split(secret, threshold, members, rng)
        shares.append(tuple(s.value for s in row))
        commitments.append(tuple(share_commitment(chain_id, dataset_id, holder, s.x - 1, epoch, s.value)
                                 for s in row))
    return CommitteeDeal(chain_id=chain_id, dataset_id=bytes(dataset_id), epoch=epoch, threshold=threshold,
                         holders=addrs, shares=tuple(shares), commitments=tuple(commitments),
                         root=_tree(addrs, commitments).root)


# --- the holder's side of a release -------------------------------------------------


@dataclass(frozen=True)
class ShareSlot:
    """What fragment holder ``holder`` expects from member ``member`` (index ``member_index`` of
    ``epoch``) for request ``request_id``: every field comes from the chain, never the envelope."""

    chain_id: int
    committee: str
    request_id: int
    dataset_id: bytes
    holder: str
    member: str
    member_index: int
    epoch: int


@dataclass(frozen=True)
class VerifiedShare:
    """A share whose signature recovered its member and which matched its commitment."""

    member: str
    member_index: int
    value: bytes

    def __repr__(self) -> str:
        return f"VerifiedShare(member={self.member}, index={self.member_index}, value=<secret>)"


def _same_address(a: bytes | str, b: bytes | str) -> bool:
    return address_word(a, "address") == address_word(b, "address")


def verify_share(envelope: bytes, slot: ShareSlot, commitment: bytes, recover: Recover) -> VerifiedShare:
    """Check a member's opened share envelope; return the share or raise naming the member.

    - :class:`ShareEnvelopeError`: undecodable, or for another request, dataset, holder, member or
      epoch (a claim: nothing on chain can prove it);
    - :class:`ShareSignatureError`: the signature does not recover ``slot.member`` (a claim);
    - :class:`ShareCommitmentMismatch`: signed by the member but not the committed share
      (provable with ``proveWrongShare``; ``.envelope`` carries the evidence).
    """
    who = f"member {slot.member} (index {slot.member_index})"
    try:
        env = decode_envelope(envelope)
    except CryptoInputError as exc:
        raise ShareEnvelopeError(f"share envelope from {who}: {exc}", member=slot.member) from None
    expected = (slot.request_id, bytes(slot.dataset_id), slot.epoch)
    if (env.request_id, env.dataset_id, env.epoch) != expected or not _same_address(env.holder, slot.holder) \
            or not _same_address(env.member, slot.member):
        raise ShareEnvelopeError(f"share envelope from {who} is for another request, dataset, holder, member "
                                 "or epoch", member=slot.member)
    signer = recover(envelope_digest(env, slot.chain_id, slot.committee), env.signature)
    if signer is None or not _same_address(signer, slot.member):
        raise ShareSignatureError(f"share envelope from {who}: signature does not recover the member",
                                  member=slot.member)
    got = share_commitment(slot.chain_id, env.dataset_id, env.holder, slot.member_index, env.epoch, env.share)
    if not hmac.compare_digest(got, require_bytes(commitment, 32, "commitment")):
        raise ShareCommitmentMismatch(f"share from {who} does not match its commitment (provable on chain)",
                                      member=slot.member, envelope=env)
    return VerifiedShare(member=slot.member, member_index=slot.member_index, value=env.share)


def combine_shares(verified: Sequence[VerifiedShare], threshold: int,
                   rejected: Sequence[str] = ()) -> bytes:
    """Rebuild a wrap key from ``threshold`` or more verified shares of distinct members.

    ``rejected`` names the members whose shares failed :func:`verify_share`; too few shares raise
    :class:`CommitteeThresholdError` naming them (and how many more are needed).
    """
    if not isinstance(threshold, int) or threshold < 1:
        raise CommitteeInputError(f"committee threshold must be at least 1, got {threshold!r}")
    seen: dict[int, str] = {}
    for s in verified:
        _member_index(s.member_index)
        if s.member_index in seen:
            raise CommitteeInputError(f"two shares for member index {s.member_index} "
                                      f"({seen[s.member_index]}, {s.member})")
        seen[s.member_index] = s.member
    if len(seen) < threshold:
        bad = f"; bad shares from {', '.join(rejected)}" if rejected else ""
        raise CommitteeThresholdError(
            f"{len(seen)} verified committee share(s), {threshold} needed: wait for "
            f"{threshold - len(seen)} more member(s){bad}", bad_members=tuple(rejected))
    chosen = sorted(verified, key=lambda s: s.member_index)[:threshold]
    return combine([Share(s.member_index + 1, s.value) for s in chosen], threshold)


__all__ = [
    "COMMITMENT_DOMAIN",
    "CommitteeDeal",
    "Recover",
    "ShareEnvelope",
    "ShareSlot",
    "VerifiedShare",
    "combine_shares",
    "commitment_leaf",
    "commitment_proof",
    "commitment_rows",
    "commitments_root",
    "deal",
    "share_commitment",
    "verify_commitment_proof",
    "verify_share",
]
