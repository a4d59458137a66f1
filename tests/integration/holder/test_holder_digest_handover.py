"""A shard's digest from its upload is what its first download reports: custody hands each
committed shard's SHA-256 to the digest cache, which then need not read the file again;
a file replaced since, or a digest older than the re-hash period, is read and hashed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from eth_utils.address import to_checksum_address

from holder_agent.receipts import ShardDigests
from holder_agent.storage import Store
from tests.support.holder_store import stage_shards

CHUNK = 1 << 20


def test_custody_hands_each_shard_digest_to_the_first_download(tmp_path: Path) -> None:
    store = Store(tmp_path, quota_bytes=64 << 20)
    uploader = to_checksum_address("0x" + "ab" * 20)
    dataset = os.urandom(32)
    bodies = {i: os.urandom(CHUNK + 17 * i) for i in range(3)}
    expected = stage_shards(store, uploader, dataset, bodies)
    assert store.take_custody(uploader, dataset, expected, bundle=False) == 3

    reads: list[int] = []
    digests = ShardDigests(known=store.committed_digest)
    for index in bodies:
        handle = store.open_shard(dataset, index)
        assert handle is not None
        with handle:
            original = handle.read
            handle.read = lambda n=-1, _r=original: reads.append(n) or _r(n)  # type: ignore[method-assign]
            assert digests.digest((dataset, index), handle) == expected[index]
    assert reads == []  # the upload's digests: no shard read again
    assert store.committed_digest((dataset, 0), (0, 0, 0)) is None  # each handed over once

    # A committed file replaced since (another inode) is read and hashed, not trusted.
    path = store.committed_path(dataset, 1)
    replaced = path.with_name("new")
    replaced.write_bytes(b"other")
    os.replace(replaced, path)
    fresh = ShardDigests(known=store.committed_digest)
    with open(path, "rb") as handle:
        assert fresh.digest((dataset, 1), handle) == hashlib.sha256(b"other").digest()


def test_a_known_digest_older_than_the_rehash_period_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    path.write_bytes(b"on disk")
    stale = ShardDigests(rehash_after=10.0, known=lambda key, stamp: (b"\x00" * 32, 10.0))
    young = ShardDigests(rehash_after=10.0, known=lambda key, stamp: (b"\x00" * 32, 9.0))
    with open(path, "rb") as handle:
        assert stale.digest((b"d" * 32, 0), handle) == hashlib.sha256(b"on disk").digest()
        assert young.digest((b"d" * 32, 0), handle) == b"\x00" * 32
