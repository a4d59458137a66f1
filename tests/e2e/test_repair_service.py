"""The repair service on a real devnet (anvil, real contracts, holder agents over HTTP, the
``repairer`` process ``devnet up`` starts): nobody runs ``shardkey repair``.

- killed (crash point ``repair.after_assign``) right after its first ``assignShard`` and
  started again, it finishes that repair: every shard assigned exactly once;
- a holder marked failed by the admin: the chain shows ``ShardRepaired`` for each of its
  shards within a bounded time; a holder that announces its exit: its shards move too;
  the fetch then restores the file byte for byte, and ``/metrics`` shows the counts.

k = 3, p = 2 (stripes of 5) over 9 holders of distinct regions: with two holders out, each
stripe still leaves Active holders of fresh regions for its moved shards.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shardkey.chain.model import HolderStatus
from shardkey.faults import CRASH_ENV
from tests.faults.conftest import Net, running

DATA_SIZE = 30_000  # 3 stripes of 3 x 4 KiB: 15 shards
REPAIR_WITHIN = 120.0  # seconds from the holder's status change to every shard moved


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from running(tmp_path_factory, 9, repairer=True)


def _events(net: Net, name: str, ds: bytes) -> list[Any]:
    return net.chain.datasets.contract.get_logs(name, net.chain.deployment.start_block, datasetId=ds)


def _shards_of(net: Net, ds: bytes, holder: str) -> set[int]:
    count = net.chain.datasets.dataset(ds).params.shard_count
    return {i for i in range(count) if net.chain.datasets.shard_holder_of(ds, i) == holder}


def _repaired(net: Net, ds: bytes) -> Counter[int]:
    return Counter(int(e.args["shardIndex"]) for e in _events(net, "ShardRepaired", ds))


def _all_repairs(net: Net) -> int:
    """ShardRepaired events of every dataset (the service moves other datasets' shards too)."""
    return len(net.chain.datasets.contract.get_logs("ShardRepaired", net.chain.deployment.start_block))


def _assigned(net: Net, ds: bytes) -> Counter[int]:
    return Counter(int(e.args["shardIndex"]) for e in _events(net, "ShardAssigned", ds))


def _holding(net: Net, ds: bytes, prefer: list[str]) -> str:
    """The first Active holder of ``prefer`` (then any) that holds shards of ``ds``."""
    placed = [net.chain.datasets.shard_holder_of(ds, i)
              for i in range(net.chain.datasets.dataset(ds).params.shard_count)]
    active = [h for h in dict.fromkeys([*prefer, *placed])
              if h in placed and net.chain.holders.holder(h).status == HolderStatus.ACTIVE]
    return active[0]


def test_a_repairer_killed_after_assigning_finishes_after_a_restart(net: Net, tmp_path: Path) -> None:
    dataset = net.store(tmp_path, os.urandom(DATA_SIZE))
    ds = bytes.fromhex(dataset[2:])
    net.stop("repairer")
    net.start("repairer", env={CRASH_ENV: "repair.after_assign"})
    failed = _holding(net, ds, [])
    lost = _shards_of(net, ds, failed)
    net.fresh_chain().holders.mark_failed(net.account("admin"), failed)

    net.wait_for("the repairer to crash after its first assignShard",
                 lambda: not net.alive("repairer"), timeout=REPAIR_WITHIN)
    assert net.crashed_at("repairer", "repair.after_assign")
    assert sum(_assigned(net, ds).values()) == 1 and not _repaired(net, ds)

    net.start("repairer")
    net.wait_for("every shard of the failed holder repaired",
                 lambda: set(_repaired(net, ds)) == lost, timeout=REPAIR_WITHIN)
    assert _assigned(net, ds) == _repaired(net, ds) == Counter(dict.fromkeys(lost, 1))
    assert _shards_of(net, ds, failed) == set()
    assert '"msg": "dataset repaired"' in net.log("repairer")


def test_failed_and_exiting_holders_shards_are_moved_without_a_command(net: Net, tmp_path: Path) -> None:
    data = os.urandom(DATA_SIZE)
    dataset = net.store(tmp_path, data)
    ds = bytes.fromhex(dataset[2:])
    before, repairs_before = net.metrics(), _all_repairs(net)
    fragment_holders = list(net.chain.datasets.fragment_set(ds).holders)

    # an admin marks a holder failed (one holding a fragment: the owner must re-deal it)
    failed = _holding(net, ds, fragment_holders)
    lost = _shards_of(net, ds, failed)
    assert lost
    net.fresh_chain().holders.mark_failed(net.account("admin"), failed)
    net.wait_for("ShardRepaired for every shard of the failed holder",
                 lambda: lost <= set(_repaired(net, ds)), timeout=REPAIR_WITHIN)
    assert _shards_of(net, ds, failed) == set()

    # a holder announces its exit: the service moves its shards (it keeps serving until then)
    leaver = _holding(net, ds, [])
    leaving = _shards_of(net, ds, leaver)
    net.run("holder", "exit", "--config", net.service(net.name_of(leaver))["config"])
    net.wait_for("ShardRepaired for every shard of the exiting holder",
                 lambda: (lost | leaving) <= set(_repaired(net, ds)), timeout=REPAIR_WITHIN)
    assert net.chain.datasets.shards_held(ds, leaver) == 0
    # each move assigned once (a shard moved onto the leaver by the first repair moves twice)
    moves = Counter(dict.fromkeys(lost, 1)) + Counter(dict.fromkeys(leaving, 1))
    assert _assigned(net, ds) == _repaired(net, ds) == moves

    # the moved copies serve a fetch: the failed holder is gone for good
    net.kill(net.name_of(failed))
    out = tmp_path / "restored.bin"
    net.fetch(net.request(dataset), out)
    assert out.read_bytes() == data

    def settled() -> bool:
        after = net.metrics()
        return after["shardkey_repairer_datasets_due"] == 0 and \
            after["shardkey_repairer_shards_repaired_total"] - \
            before["shardkey_repairer_shards_repaired_total"] == _all_repairs(net) - repairs_before

    net.wait_for("the metrics to show the repairs", settled, timeout=30,
                 detail=lambda: f"{net.metrics()}\n{net.log('repairer')[-3000:]}")
    after = net.metrics()
    assert after["shardkey_repairer_redeal_needed"] >= 1  # the failed fragment holder's set
    failures = "shardkey_repairer_repair_failures_total"
    assert after[failures] == before[failures]
    assert after["shardkey_repairer_last_pass_block"] > 0
    assert "fragments need a re-deal by the owner" in net.log("repairer")
