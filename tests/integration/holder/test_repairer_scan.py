"""The repair service's full scans read each part of the chain's history once. Behind a
provider that caps log queries at 10 blocks (a real process between the service and anvil),
a scan that re-read the history paid its whole range again every ``scan_interval``:

- the datasets ever activated are read at the first scan; later scans take the ones
  activated since from the watcher's ``DatasetActivated``;
- a dataset's repairs, releases and proofs are read once, at its first look; after that
  every dataset's new blocks are read together, six queries a poll whatever their number."""

from __future__ import annotations

from pathlib import Path

from repairer.service import RepairService
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from tests.support.hostile_rpc import ProxyConfig, hostile_rpc

PER_DATASET = ("ShardRepaired", "ShardReleased", "ShardIntegrityFailureProven")


def test_full_scans_read_each_part_of_the_history_once(world, tmp_path: Path) -> None:
    first = world.active_dataset()
    start = world.dev.deployment.start_block
    registered = world.chain.datasets.registration(first.dataset_id, start).block_number
    with hostile_rpc(world.dev.client.rpc_url, ProxyConfig(range_cap=10)) as proxy:
        chain = ShardKeyChain(world.dev.deployment, ChainClient(proxy.url))
        contracts = {"ShardRepaired": chain.datasets.contract, "ShardReleased": chain.datasets.contract,
                     "ShardIntegrityFailureProven": chain.retrievals.contract,
                     "DatasetActivated": chain.datasets.contract}
        topic = {name: "0x" + c.codec.event(name).topic.hex() for name, c in contracts.items()}
        service = RepairService(chain, world.dev.account("repair-service"), tmp_path / "repairer",
                                scan_interval=0.0)  # every poll is a full scan
        service.poll()
        assert first.dataset_id in service.needs and not service.needs[first.dataset_id].due
        queries = proxy.stats.topic_ranges
        history = sum(1 for t, _, _ in queries if t == topic["DatasetActivated"])
        assert history >= 2  # the history, in chunks of 10 blocks
        lifetime = [q for q in queries if q[0] in {topic[n] for n in PER_DATASET}]
        assert len(lifetime) >= 6  # each of the three since the registration, in chunks
        confirmed = service.watcher.cursor.block
        read_before = len(queries)

        second = world.active_dataset()
        world.dev.mine(2)  # its activation confirmed
        service.poll()  # the second dataset's first look: its own history, once
        assert second.dataset_id in service.needs  # from the watcher's DatasetActivated
        filtered, per_poll = proxy.stats.filtered_logs, len(queries)
        for _ in range(3):
            world.dev.mine(1)
            service.poll()
        # every dataset's new blocks in shared queries: none names a dataset any more
        assert proxy.stats.filtered_logs == filtered
        assert [q for q in queries[per_poll:] if q[0] in {topic[n] for n in PER_DATASET}]
        assert first.dataset_id in service.needs
        later = queries[read_before:]
        assert not [q for q in later if q[0] == topic["DatasetActivated"]]  # not read again
        old = [q for q in later if q[0] in {topic[n] for n in PER_DATASET} and q[1] <= confirmed
               and q[2] >= registered]
        assert not old, old  # the first dataset's confirmed blocks are not read again
