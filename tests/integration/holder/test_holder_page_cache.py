"""A holder's shards leave the page cache (``drop_cache``, on by default): an upload is on
disk and out of memory once sealed, custody still commits it intact, and a shard read for
a download is dropped when the read closes. With ``drop_cache`` off the pages stay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from holder_agent.storage import Store
from tests.support.holder_store import stage_shards
from tests.support.pagecache import drops_pages, resident_pages

UPLOADER = to_checksum_address("0x" + "ab" * 20)


@pytest.mark.parametrize("drop", [True, False], ids=["drop_cache", "keep_cache"])
def test_stored_and_served_shards_leave_the_page_cache_unless_told_to_keep_them(
        tmp_path: Path, drop: bool) -> None:
    if not drops_pages(tmp_path):
        pytest.skip(f"{tmp_path}'s filesystem keeps every page (tmpfs): nothing to drop")
    store = Store(tmp_path, quota_bytes=64 << 20, drop_cache=drop)
    dataset = os.urandom(32)
    bodies = {i: os.urandom((4 << 20) + 1039 * (i + 1)) for i in range(3)}
    expected = stage_shards(store, UPLOADER, dataset, bodies)
    staged = [store.staged_path(UPLOADER, dataset, i) for i in bodies]
    assert all((resident_pages(p) == 0) == drop for p in staged)  # written behind, or still cached

    assert store.take_custody(UPLOADER, dataset, expected, bundle=False) == 3
    for index, body in bodies.items():
        path = store.committed_path(dataset, index)
        with open(path, "rb") as warm:  # bring it back, as a download would
            assert warm.read() == body
        assert resident_pages(path) > 0
        handle = store.open_shard(dataset, index)
        assert handle is not None
        with handle:
            assert handle.read() == body
            assert resident_pages(path) > 0  # dropped on close, not while it is being sent
        assert (resident_pages(path) == 0) == drop
