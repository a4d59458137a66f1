"""Merkle tree: OpenZeppelin-compatible leaves, nodes and proofs."""

from __future__ import annotations

import hashlib

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.crypto import merkle
from shardkey.crypto.errors import MerkleError
from shardkey.crypto.merkle import MerkleTree, hash_pair, leaf_hash, verify_proof


def digest(i: int) -> bytes:
    return hashlib.sha256(b"shard ciphertext %d" % i).digest()


def oz_leaf(index: int, h: bytes) -> bytes:
    # StandardMerkleTree leaf for ["uint256","bytes32"]: keccak(keccak(abi.encode(...)))
    return keccak(keccak(index.to_bytes(32, "big") + h))


def oz_pair(a: bytes, b: bytes) -> bytes:
    return keccak(b"".join(sorted([a, b])))


def oz_standard_tree(leaves: list[bytes]) -> list[bytes]:
    """Independent port of @openzeppelin/merkle-tree core.makeMerkleTree (heap layout).

    With ``sortLeaves: false`` StandardMerkleTree feeds leaves in value order.
    """
    tree: list[bytes] = [b""] * (2 * len(leaves) - 1)
    for i, leaf in enumerate(leaves):
        tree[len(tree) - 1 - i] = leaf
    for i in range(len(tree) - 1 - len(leaves), -1, -1):
        tree[i] = oz_pair(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def oz_proof(tree: list[bytes], n: int, value_index: int) -> list[bytes]:
    i = len(tree) - 1 - value_index
    proof = []
    while i > 0:
        proof.append(tree[i - 1 if i % 2 == 0 else i + 1])
        i = (i - 1) // 2
    return proof


def test_leaf_encoding() -> None:
    h = digest(0)
    enc = (258).to_bytes(32, "big") + h  # abi.encode(uint256, bytes32)
    assert leaf_hash(258, h) == keccak(keccak(enc))
    assert hash_pair(b"\x01" * 32, b"\x00" * 32) == keccak(b"\x00" * 32 + b"\x01" * 32)


def test_one_leaf() -> None:
    t = MerkleTree.from_digests([digest(0)])
    assert t.root == oz_leaf(0, digest(0))
    assert t.proof(0) == []
    assert verify_proof([], t.root, t.leaf(0))


def test_two_leaves() -> None:
    l0, l1 = oz_leaf(0, digest(0)), oz_leaf(1, digest(1))
    t = MerkleTree.from_digests([digest(0), digest(1)])
    assert t.root == keccak(min(l0, l1) + max(l0, l1))
    assert t.proof(0) == [l1]
    assert t.proof(1) == [l0]


def test_three_leaves() -> None:
    l0, l1, l2 = (oz_leaf(i, digest(i)) for i in range(3))
    t = MerkleTree.from_digests([digest(i) for i in range(3)])
    n01 = keccak(min(l0, l1) + max(l0, l1))
    assert t.root == keccak(min(n01, l2) + max(n01, l2))
    assert t.proof(0) == [l1, l2]
    assert t.proof(1) == [l0, l2]
    assert t.proof(2) == [n01]
    assert merkle.merkle_root([digest(i) for i in range(3)]) == t.root


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 8, 16, 32])
def test_matches_standard_merkle_tree_where_shapes_agree(n: int) -> None:
    leaves = [oz_leaf(i, digest(i)) for i in range(n)]
    oz = oz_standard_tree(leaves)
    t = MerkleTree(leaves)
    assert t.root == oz[0]
    for i in range(n):
        # the proof OZ's JS would hand out verifies against our root, and vice versa
        assert verify_proof(oz_proof(oz, n, i), t.root, leaves[i])
        assert verify_proof(t.proof(i), oz[0], leaves[i])


def test_odd_node_is_promoted_per_architecture() -> None:
    """ARCHITECTURE.md shape for 5 leaves: ((l0 l1)(l2 l3)) l4 -- differs from OZ heap."""
    leaves = [oz_leaf(i, digest(i)) for i in range(5)]
    n01, n23 = oz_pair(leaves[0], leaves[1]), oz_pair(leaves[2], leaves[3])
    t = MerkleTree(leaves)
    assert t.root == oz_pair(oz_pair(n01, n23), leaves[4])
    assert t.proof(4) == [oz_pair(n01, n23)]
    assert t.root != oz_standard_tree(leaves)[0]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_every_proof_verifies_and_binds_index(n: int, data: st.DataObject) -> None:
    digests = [digest(i) for i in range(n)]
    t = MerkleTree.from_digests(digests)
    for i in range(n):
        p = t.proof(i)
        assert merkle.verify_shard(i, digests[i], p, t.root)
        assert merkle.process_proof(p, t.leaf(i)) == t.root
    if n > 1:
        i = data.draw(st.integers(0, n - 1))
        j = data.draw(st.integers(0, n - 1).filter(lambda v: v != i))
        p = t.proof(i)
        assert not merkle.verify_shard(j, digests[j], p, t.root)  # other leaf
        assert not merkle.verify_shard(j, digests[i], p, t.root)  # same data, other index
        assert not merkle.verify_shard(i, digests[j], p, t.root)  # other data, same index
        assert not verify_proof(t.proof(j), t.root, t.leaf(i)) or t.leaf(i) == t.leaf(j)


def test_ten_thousand_leaves() -> None:
    digests = [digest(i) for i in range(10_000)]
    t = MerkleTree.from_digests(digests)
    assert len(t) == 10_000
    for i in (0, 4999, 9998, 9999):
        assert len(t.proof(i)) <= 14
        assert merkle.verify_shard(i, digests[i], t.proof(i), t.root)


def test_errors() -> None:
    with pytest.raises(MerkleError, match="at least one leaf"):
        MerkleTree([])
    with pytest.raises(MerkleError, match="leaf 1 must be 32 bytes"):
        MerkleTree([bytes(32), bytes(31)])
    t = MerkleTree.from_digests([digest(0), digest(1)])
    with pytest.raises(MerkleError, match="leaf index 2 out of range"):
        t.proof(2)
    with pytest.raises(MerkleError, match="uint256"):
        leaf_hash(-1, digest(0))
    with pytest.raises(MerkleError, match="sha256 digest of shard 3"):
        leaf_hash(3, b"short")
    with pytest.raises(MerkleError, match="proof element 0"):
        verify_proof([b"x"], t.root, t.leaf(0))


def test_root_commits_to_exactly_the_published_digests() -> None:
    digests = [digest(i) for i in range(7)]
    root = merkle.merkle_root(digests)
    assert merkle.root_commits_to(root, digests, 7)
    assert not merkle.root_commits_to(root, digests, 6)  # count disagrees with the list
    assert not merkle.root_commits_to(root, digests[:6], 6)
    assert not merkle.root_commits_to(root, [digests[1], digests[0], *digests[2:]], 7)  # order
    assert not merkle.root_commits_to(root, [*digests[:3], digest(99), *digests[4:]], 7)
    assert not merkle.root_commits_to(merkle.merkle_root([digest(i + 1) for i in range(7)]), digests, 7)
    assert not merkle.root_commits_to(root, [], 0)
