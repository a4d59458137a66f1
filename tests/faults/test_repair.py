"""``shardkey repair`` on a real devnet (anvil, real contracts, holder agents over HTTP):
a failed holder's shards rebuilt without a key onto the spare holder, the fetch then needs
the new copies, and a repairer killed after ``assignShard`` finishes on a re-run without
placing anything twice.

k = 3, p = 2 over 7 holders of distinct regions (one marked failed per test): every stripe
leaves some Active holders out, where a lost shard of that stripe may go.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardkey.faults import CRASH_ENV, CRASH_STATUS
from tests.faults.conftest import Net, running

DATA_SIZE = 30_000  # 3 stripes of 3 x 4 KiB: 15 shards, 3 per holder


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from running(tmp_path_factory, 7)


def _fail_one(net: Net, dataset: str) -> tuple[bytes, str, dict[int, set[str]]]:
    """Mark the first shard holder failed: its shards, each with the holders its stripe leaves out."""
    ds = bytes.fromhex(dataset[2:])
    params = net.chain.datasets.dataset(ds).params
    failed = params.shard_holders[0]
    net.fresh_chain().holders.mark_failed(net.account("admin"), failed)
    holders = [net.chain.datasets.shard_holder_of(ds, i) for i in range(params.shard_count)]
    targets = {}
    for index in (i for i, h in enumerate(holders) if h == failed):
        stripe = holders[index // 5 * 5:index // 5 * 5 + 5]
        targets[index] = {a for a in params.shard_holders if a not in stripe}
    return ds, net.name_of(failed), targets


def _events(net: Net, name: str, ds: bytes) -> list[object]:
    return net.chain.datasets.contract.get_logs(name, net.chain.deployment.start_block, datasetId=ds)


def test_repair_moves_a_failed_holders_shards_and_fetch_reads_them(net: Net, tmp_path: Path) -> None:
    data = os.urandom(DATA_SIZE)
    dataset = net.store(tmp_path, data)
    ds, failed, targets = _fail_one(net, dataset)
    assert len(targets) == 3

    plan = json.loads(net.run("repair", dataset, "--dry-run", "--json").stdout)
    planned = {s["index"]: s["new_holder"] for s in plan["shards"]}
    assert {s["state"] for s in plan["shards"]} == {"planned"} and planned.keys() == targets.keys()
    assert all(planned[i] in targets[i] for i in targets)
    assert _events(net, "ShardAssigned", ds) == []

    report = json.loads(net.run("repair", dataset, "--json").stdout)
    assert [s["state"] for s in report["shards"]] == ["repaired"] * 3
    assert report["bytes_written"] == 3 * report["bytes_read"] // 9
    moved = {int(e.args["shardIndex"]): e.args["newHolder"] for e in _events(net, "ShardRepaired", ds)}
    assert moved == planned
    again = json.loads(net.run("repair", dataset, "--json").stdout)
    assert again["shards"] == []  # nothing left to do

    # the failed holder is gone, and two more shards of each stripe are lost (their holders
    # stay up for their fragments): every stripe has exactly k shards, one the repaired copy
    net.kill(failed)
    for index in targets:
        others = [i for i in range(index // 5 * 5, index // 5 * 5 + 5) if i != index][:2]
        for other in others:
            name = net.name_of(net.chain.datasets.shard_holder_of(ds, other))
            store = Path(net.service(name)["data_dir"]) / "store" / "datasets" / dataset[2:] / "shards"
            (store / str(other)).unlink()
    out = tmp_path / "restored.bin"
    net.fetch(net.request(dataset), out)
    assert out.read_bytes() == data


def test_a_repairer_killed_after_assigning_finishes_on_a_rerun(net: Net, tmp_path: Path) -> None:
    dataset = net.store(tmp_path, os.urandom(DATA_SIZE))
    ds, _, targets = _fail_one(net, dataset)
    proc = net.run("repair", dataset, "--json", check=CRASH_STATUS, env={CRASH_ENV: "repair.after_assign"})
    assert "repair.after_assign" in proc.stderr
    assert len(_events(net, "ShardAssigned", ds)) == 1 and _events(net, "ShardRepaired", ds) == []

    report = json.loads(net.run("repair", dataset, "--json").stdout)
    assert [(s["state"], s["resumed"]) for s in report["shards"]] == \
        [("repaired", True), ("repaired", False), ("repaired", False)]
    assigned = Counter(int(e.args["shardIndex"]) for e in _events(net, "ShardAssigned", ds))
    repaired = Counter(int(e.args["shardIndex"]) for e in _events(net, "ShardRepaired", ds))
    assert assigned == repaired == Counter(dict.fromkeys(targets, 1))
    assert all(net.chain.datasets.shard_holder_of(ds, i) in targets[i] for i in targets)


def test_a_holder_that_is_down_is_never_a_target_and_a_pending_one_is_reassigned(net: Net,
                                                                                  tmp_path: Path) -> None:
    dataset = net.store(tmp_path, os.urandom(DATA_SIZE))
    ds, _, targets = _fail_one(net, dataset)
    first = min(targets)
    stale = min(targets[first])
    # an earlier run assigned the first shard to a holder that has gone down since
    net.fresh_chain().datasets.assign_shard(net.account("owner"), ds, first, stale)
    net.kill(net.name_of(stale))

    report = json.loads(net.run("repair", dataset, "--json").stdout)
    assert [s["state"] for s in report["shards"]] == ["repaired"] * 3
    (again,) = [s for s in report["shards"] if s["index"] == first]
    assert again["detail"].startswith(f"reassigned from {stale}") and "unreachable" in again["detail"]
    assigned = [(int(e.args["shardIndex"]), e.args["to"]) for e in _events(net, "ShardAssigned", ds)]
    assert assigned[0] == (first, stale) and all(holder != stale for _, holder in assigned[1:])
    assert len(assigned) == 4  # the stale one, then one per shard
    for index in targets:
        holder = net.chain.datasets.shard_holder_of(ds, index)
        assert holder in targets[index] and holder != stale
