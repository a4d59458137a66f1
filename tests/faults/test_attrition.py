"""Attrition: a dataset outlives more holders than its code and its key threshold allow.

k = 3, p = 2 and t = 3 of n = 5 fragments, on a real devnet of 8 holders in distinct regions.
Three holders of the same stripe, each also a fragment holder, are lost one after another:
more than ``p`` shards of that stripe and more than ``n - t`` fragment holders in all, but
never more than one at a time. The losses differ: a power cut the admin then marks failed,
a graceful ``holder exit``, and a holder that vanishes (SIGKILL) marked failed afterwards.
Between losses the shards are repaired without a key and the fragments re-dealt by the
owner: the repairs by the repair service the devnet runs (nobody runs ``shardkey repair``),
the re-deals by the owner through the CLI. At the end, with all three gone, the file
restores byte for byte; every repair and re-deal is an event; every token of every request
went to a holder of that request's fragment epoch, so no restore asked a lost holder (or any
holder outside the current set) for a key.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardkey.chain.model import HolderStatus
from tests.faults.conftest import Net, running

HOLDERS = 8
POLICY = "requesters: [requester, owner]\nthreshold: 3\n"
DATA_SIZE = 100_000  # 9 stripes of 3 x 4 KiB: 45 shards over 8 holders
REPAIR_WITHIN = 120.0  # seconds from a holder's loss on chain to all its shards moved


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from running(tmp_path_factory, HOLDERS, repairer=True)


def _victims(net: Net, ds: bytes) -> list[str]:
    """Three holders of stripe 0 that are also fragment holders (stripe 0 then loses > p)."""
    params = net.chain.datasets.dataset(ds).params
    stripe0 = [net.chain.datasets.shard_holder_of(ds, i) for i in range(params.k + params.p)]
    fragments = set(net.chain.datasets.fragment_set(ds).holders)
    both = [h for h in stripe0 if h in fragments]
    assert len(both) >= 3, f"stripe 0 {stripe0} and fragment set {fragments} share fewer than 3 holders"
    return [net.name_of(h) for h in both[:3]]


def _held(net: Net, ds: bytes, address: str) -> list[int]:
    count = net.chain.datasets.dataset(ds).params.shard_count
    return [i for i in range(count) if net.chain.datasets.shard_holder_of(ds, i) == address]


def _admin_fail(net: Net, name: str) -> None:
    net.run("holder", "fail", net.address(name), "--as", net.info["accounts"]["admin"]["key_file"])
    assert net.chain.holders.holder(net.address(name)).status == HolderStatus.FAILED


def _repaired_by_the_service(net: Net, dataset: str, ds: bytes, holder: str, lost: list[int]) -> None:
    """Wait until the repair service has moved every shard ``holder`` held; then a repair
    run by hand finds nothing left to do."""
    address = net.address(holder)
    net.wait_for(f"the repair service moving {holder}'s shards {lost}", lambda: all(
        net.chain.datasets.shard_holder_of(ds, i) != address for i in lost), REPAIR_WITHIN)
    assert json.loads(net.run("repair", dataset, "--dry-run", "--json").stdout)["shards"] == []


def _redeal(net: Net, dataset: str, ds: bytes, leaving: str) -> list[str]:
    """Re-deal the fragments away from ``leaving`` to a spare Active holder; the new set."""
    current = [net.name_of(a) for a in net.chain.datasets.fragment_set(ds).holders]
    active = [n for n in net.holder_names()
              if net.chain.holders.holder(net.address(n)).status == HolderStatus.ACTIVE]
    spare = next(n for n in active if n not in current)
    new = [spare if n == leaving else n for n in current]
    epoch = net.chain.datasets.fragment_epochs(ds)[0]
    summary = json.loads(net.run("redeal", dataset, "--fragment-holders", ",".join(new), "--json").stdout)
    assert summary["epoch"] == epoch + 1 and summary["fragment_holders"] == new
    assert net.chain.datasets.fragment_epochs(ds) == (epoch + 1, epoch + 1)
    return new


def _all_healthy(net: Net, dataset: str) -> None:
    verdict = net.json("audit", "verify", dataset)
    assert {s["health"] for s in verdict["stripes"]} == {"healthy"}, verdict["stripes"]


def test_the_file_outlives_three_holders_lost_one_at_a_time(net: Net, tmp_path: Path) -> None:
    data = os.urandom(DATA_SIZE)
    dataset = net.store(tmp_path, data, "--fragment-holders", "5", "--threshold", "3", policy=POLICY)
    ds = bytes.fromhex(dataset[2:])
    params = net.chain.datasets.dataset(ds).params
    assert (params.k, params.p, params.threshold, len(params.fragment_holders)) == (3, 2, 3, 5)
    first, second, third = _victims(net, ds)
    lost_shards: dict[str, list[int]] = {}

    # 1. a power cut; the admin marks the holder failed
    lost_shards[first] = _held(net, ds, net.address(first))
    net.kill(first)
    _admin_fail(net, first)
    _repaired_by_the_service(net, dataset, ds, first, lost_shards[first])
    _redeal(net, dataset, ds, first)
    _all_healthy(net, dataset)

    # 2. a graceful exit: the holder serves until its shards and fragments are elsewhere,
    #    then retires by itself and deletes what it held
    lost_shards[second] = _held(net, ds, net.address(second))
    net.run("holder", "exit", "--config", net.service(second)["config"])
    _repaired_by_the_service(net, dataset, ds, second, lost_shards[second])
    _redeal(net, dataset, ds, second)
    net.wait_for(f"{second} to retire",
                 lambda: net.chain.holders.holder(net.address(second)).status == HolderStatus.RETIRED, 60)
    store = Path(net.service(second)["data_dir"]) / "store" / "datasets" / dataset[2:]
    net.wait_for(f"{second} to delete its copy", lambda: not store.exists(), 30)
    _all_healthy(net, dataset)

    # 3. a holder vanishes; the admin notices later
    lost_shards[third] = _held(net, ds, net.address(third))
    net.kill(third)
    _admin_fail(net, third)
    _repaired_by_the_service(net, dataset, ds, third, lost_shards[third])
    final_set = _redeal(net, dataset, ds, third)
    _all_healthy(net, dataset)
    net.stop(second)  # retired: nothing of the dataset is left there anyway

    # stripe 0 lost three of its five original shards, more than p; three of the five
    # original fragment holders are gone, more than n - t
    stripe0 = set(range(params.k + params.p))
    assert len(stripe0 & {i for shards in lost_shards.values() for i in shards}) == 3
    gone = {net.address(n) for n in (first, second, third)}
    assert len(gone & set(params.fragment_holders)) == 3
    assert not gone & set(net.chain.datasets.fragment_set(ds).holders)

    request = net.request(dataset)
    restored = tmp_path / "restored.bin"
    net.fetch(request, restored)
    assert restored.read_bytes() == data

    # every repair and re-deal is on chain
    repaired = Counter(int(e["args"]["shardIndex"]) for e in net.events("datasets", "ShardRepaired",
                                                                        datasetId=ds))
    assert sorted(repaired.elements()) == sorted(i for shards in lost_shards.values() for i in shards)
    assert net.metrics()["shardkey_repairer_shards_repaired_total"] == sum(map(len, lost_shards.values()))
    assert len(net.events("datasets", "FragmentEpochActivated", datasetId=ds)) == 3
    assert len(net.events("retrievals", "RedealRequested", datasetId=ds)) == 3
    assert {net.chain.datasets.shard_holder_of(ds, i) for i in range(params.shard_count)}.isdisjoint(gone)

    # no token of any request went outside that request's fragment epoch, and the last
    # restore read only from the final set
    sets = {e: set(net.chain.datasets.fragment_set(ds, e).holders) for e in range(1, 5)}
    requested = net.events("retrievals", "RetrievalRequested", datasetId=ds)
    requests = [int(e["args"]["requestId"]) for e in requested]
    assert len(requests) == 4  # three re-deals and the restore
    for rid in requests:
        epoch = net.chain.retrievals.request(rid).fragment_epoch
        holders = {e["args"]["holder"] for e in net.events("retrievals", "TokenIssued", requestId=rid)}
        assert holders and holders <= sets[epoch], (rid, epoch)
    assert set(net.deliveries(request)) <= set(final_set) and len(net.deliveries(request)) >= 3
    assert net.chain.retrievals.request(request).fragment_epoch == 4
