"""Re-deal core without a chain: the fresh split, the holder list parser, epoch bundles on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from holder_agent.errors import InvalidNameError
from holder_agent.storage import BUNDLE, Store, bundle_item, committed_datasets
from shardkey.client.redeal import _split_again, parse_holders
from shardkey.crypto.shamir import Share, combine, split
from shardkey.errors import UsageError

A = "0x" + "11" * 20
B = "0x" + "22" * 20


def test_split_again_rebuilds_every_key_for_the_new_set() -> None:
    keys = {0: os.urandom(32), 1: os.urandom(32), 3: os.urandom(32)}  # data shards only
    old: dict[int, dict[int, bytes]] = {x: {} for x in range(1, 6)}
    for index, key in keys.items():
        for share in split(key, 3, 5, os.urandom):
            old[share.x][index] = share.value
    fragments = _split_again({x: old[x] for x in (2, 4, 5)}, [2, 4, 5], 2, 4, os.urandom)
    assert len(fragments) == 4 and all(sorted(f) == sorted(keys) for f in fragments)
    for index, key in keys.items():
        assert combine([Share(1, fragments[0][index]), Share(4, fragments[3][index])]) == key
        assert combine([Share(2, fragments[1][index]), Share(3, fragments[2][index])]) == key
        assert fragments[1][index] != old[2][index]  # dealt afresh, not copied


def test_parse_holders() -> None:
    assert parse_holders("auto") is None and parse_holders(" AUTO ") is None
    assert parse_holders(f"{A}, {B}") == [A, B]
    with pytest.raises(UsageError, match="not an address"):
        parse_holders(f"{A},nobody")
    with pytest.raises(UsageError, match="listed twice"):
        parse_holders(f"{A},{A.upper().replace('0X', '0x')}")


def test_epoch_bundles_are_kept_apart_and_superseded_ones_dropped(tmp_path: Path) -> None:
    store = Store(tmp_path, quota_bytes=1 << 20)
    ds = bytes(range(32))
    assert bundle_item(1) == BUNDLE and bundle_item(3) == "bundle.3"
    for bad in (0, -1, 2**32):
        with pytest.raises(InvalidNameError):
            bundle_item(bad)
    for epoch in (1, 2, 3):
        path = store.committed_path(ds, bundle_item(epoch))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"w" * (10 * epoch))
    assert store.committed_path(ds, "bundle.2") == tmp_path / "datasets" / ds.hex() / "bundles" / "2"
    assert store.committed_bundles(ds) == [1, 2, 3] and store.has_bundle(ds)
    assert store.read_bundle(ds, 2) == b"w" * 20
    assert store.drop_bundles(ds, keep_epoch=3) == [1, 2]
    assert store.committed_bundles(ds) == [3] and store.read_bundle(ds) is None
    assert not store.has_bundle(ds, 1) and store.has_bundle(ds, 3)
    assert committed_datasets(tmp_path) == [ds]
    assert store.delete_dataset(ds) == 30
    assert committed_datasets(tmp_path) == [] and not store.has_bundle(ds)
