"""Merkle tree over shard ciphertext hashes, verifiable by OpenZeppelin ``MerkleProof``.

- leaf = keccak256(keccak256(abi.encode(uint256 index, bytes32 sha256)))
  (OpenZeppelin StandardMerkleTree's double-hashed leaf for ``["uint256", "bytes32"]``);
- node = keccak256(min(a, b) | max(a, b))  (``Hashes.commutativeKeccak256``);
- shape: leaves in index order, pairs hashed left to right, an odd node at the end of a
  level is promoted unchanged (docs/ARCHITECTURE.md). A single leaf is its own root.

Proofs verify with ``MerkleProof.verify(proof, root, leaf)``. Note: for leaf counts
such as 5 or 7 this shape differs from StandardMerkleTree's heap layout, so roots
coincide with ``StandardMerkleTree.of(values, enc, {sortLeaves: false})`` only when
the two shapes agree (1-4, 6, 8, any power of two, ...); proofs are valid either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_hash.auto import keccak

from shardkey.crypto.encoding import require_bytes, u256be
from shardkey.crypto.errors import MerkleError


def _b32(value: bytes, name: str) -> bytes:
    return require_bytes(value, 32, name, MerkleError)


def leaf_hash(index: int, sha256_digest: bytes) -> bytes:
    """Leaf for shard ``index`` whose ciphertext has SHA-256 ``sha256_digest``."""
    if not isinstance(index, int) or index < 0 or index >= 1 << 256:
        raise MerkleError(f"leaf index must be a uint256, got {index!r}")
    digest = _b32(sha256_digest, f"sha256 digest of shard {index}")
    return keccak(keccak(u256be(index) + digest))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin ``commutativeKeccak256``: keccak256 of the two nodes sorted."""
    return keccak(a + b) if a <= b else keccak(b + a)


class MerkleTree:
    """Tree over precomputed 32-byte leaves (use :func:`leaf_hash`), built in O(n)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise MerkleError("a Merkle tree needs at least one leaf")
        level = [_b32(leaf, f"leaf {i}") for i, leaf in enumerate(leaves)]
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self._levels.append(nxt)
            level = nxt

    @classmethod
    def from_digests(cls, sha256_digests: Sequence[bytes]) -> MerkleTree:
        """Build from shard ciphertext SHA-256 digests, shard ``i`` at position ``i``."""
        return cls([leaf_hash(i, d) for i, d in enumerate(sha256_digests)])

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        """The 32-byte root."""
        return self._levels[-1][0]

    def leaf(self, index: int) -> bytes:
        """The leaf at ``index``."""
        self._check(index)
        return self._levels[0][index]

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise MerkleError(f"leaf index {index} out of range (tree has {len(self)} leaves)")

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf at ``index`` up to the root."""
        self._check(index)
        proof = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof


def merkle_root(sha256_digests: Sequence[bytes]) -> bytes:
    """Root of the tree over shard digests (shard ``i`` is leaf ``i``)."""
    return MerkleTree.from_digests(sha256_digests).root


def root_commits_to(root: bytes, sha256_digests: Sequence[bytes], count: int) -> bool:
    """True iff ``root`` is the root over exactly ``count`` shard digests, in index order.

    A registration whose root disagrees with its published shard hashes would let the owner
    "prove" an honest holder's true shard wrong (a Merkle proof of another leaf under the
    bogus root); holders refuse custody of it and auditors flag it.
    """
    if count <= 0 or len(sha256_digests) != count:
        return False
    return merkle_root(sha256_digests) == _b32(root, "root")


def process_proof(proof: Sequence[bytes], leaf: bytes) -> bytes:
    """Root implied by ``proof`` and ``leaf`` (OpenZeppelin ``processProof``)."""
    node = _b32(leaf, "leaf")
    for i, sibling in enumerate(proof):
        node = hash_pair(node, _b32(sibling, f"proof element {i}"))
    return node


def verify_proof(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """``MerkleProof.verify(proof, root, leaf)``: True iff the proof leads to ``root``."""
    return process_proof(proof, leaf) == _b32(root, "root")


def verify_shard(index: int, sha256_digest: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True iff a shard's ciphertext digest at ``index`` is proven under ``root``."""
    return verify_proof(proof, root, leaf_hash(index, sha256_digest))
