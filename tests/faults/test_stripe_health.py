"""Stripe health as holders go down, and keyless rebuild of the shards a real store wrote.

k = 3, p = 2 over 5 holders, 3 stripes: each holder keeps one shard of every stripe, so
every holder lost takes one good shard from every stripe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from shardkey.crypto import rebuild_shards
from tests.faults.conftest import Net

DATA_SIZE = 30_000  # 3 stripes of 3 x 4 KiB


def _verify(net: Net, dataset: str, *extra: str, check: int) -> dict[str, object]:
    proc = net.run("audit", "verify", dataset, "--json", *extra, check=check)
    report: dict[str, object] = json.loads(proc.stdout)
    return report


def _healths(report: dict[str, object]) -> list[str]:
    stripes = report["stripes"]
    assert isinstance(stripes, list)
    return [str(s["health"]) for s in stripes]


def test_audit_grades_stripes_as_holders_go_down(net: Net, tmp_path: Path) -> None:
    dataset = net.store(tmp_path, os.urandom(DATA_SIZE))
    report = _verify(net, dataset, check=0)
    assert _healths(report) == ["healthy"] * 3
    assert report["stripe_health"] == {"healthy": 3, "degraded": 0, "at risk": 0, "lost": 0}

    net.kill("holder-1")  # 4 of 5 good: at most k + 1, at risk by default; degraded at margin 0
    assert _healths(_verify(net, dataset, check=4)) == ["at risk"] * 3
    assert _healths(_verify(net, dataset, "--repair-margin", "0", check=4)) == ["degraded"] * 3
    stripes = _verify(net, dataset, check=4)["stripes"]
    assert isinstance(stripes, list)
    lost_index = [i for i in range(15) if net.name_of(net.chain.datasets.shard_holder_of(
        bytes.fromhex(dataset[2:]), i)) == "holder-1"]
    assert sorted(i for s in stripes for i in s["missing"]) == lost_index

    net.kill("holder-2")
    assert _healths(_verify(net, dataset, check=4)) == ["at risk"] * 3
    net.kill("holder-3")  # 2 of 5: lost, its own exit code, named on stderr, table too
    assert _healths(_verify(net, dataset, check=6)) == ["lost"] * 3
    proc = net.run("audit", "verify", dataset, check=6)
    assert "3 stripe(s) have fewer than k good shards" in proc.stderr
    assert "lost" in proc.stdout


def test_lost_shards_rebuild_byte_identical_from_any_k_stored_shards(net: Net, tmp_path: Path) -> None:
    dataset = net.store(tmp_path, os.urandom(DATA_SIZE))
    ds = bytes.fromhex(dataset[2:])
    registration = net.chain.datasets.registration(ds)
    params = registration.params

    def stored(index: int) -> bytes:
        holder = net.name_of(net.chain.datasets.shard_holder_of(ds, index))
        path = Path(net.service(holder)["data_dir"]) / "store" / "datasets" / ds.hex() / "shards" / str(index)
        return path.read_bytes()

    m = params.m
    for stripe in range(params.stripes):
        indices = list(range(stripe * m, (stripe + 1) * m))
        lost = [indices[0], indices[3]]  # a data shard and a parity shard
        kept = {i: stored(i) for i in indices if i not in lost}
        rebuilt = rebuild_shards(kept, params.k, params.p, lost, registration.shard_hashes)
        assert rebuilt == {i: stored(i) for i in lost}
