"""The repair service's full scans read the chain's activation history once, at the first
scan; later ones take the datasets activated since from its watcher's events. Behind a
provider that caps log queries at 10 blocks (a real process between the service and anvil):
a scan that re-read the history paid its whole range again every ``scan_interval``."""

from __future__ import annotations

from pathlib import Path

from repairer.service import RepairService
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from tests.support.hostile_rpc import ProxyConfig, hostile_rpc


def test_full_scans_read_the_activation_history_once_then_follow_the_watcher(world, tmp_path: Path) -> None:
    first = world.active_dataset()
    with hostile_rpc(world.dev.client.rpc_url, ProxyConfig(range_cap=10)) as proxy:
        chain = ShardKeyChain(world.dev.deployment, ChainClient(proxy.url))
        activated = "0x" + chain.datasets.contract.codec.event("DatasetActivated").topic.hex()
        service = RepairService(chain, world.dev.account("repair-service"), tmp_path / "repairer",
                                scan_interval=0.0)  # every poll is a full scan
        service.poll()
        assert first.dataset_id in service.needs and not service.needs[first.dataset_id].due
        history_reads = proxy.stats.log_topics[activated]
        assert history_reads >= 2  # the history, in chunks of 10 blocks

        second = world.active_dataset()
        world.dev.mine(2)  # its activation confirmed
        for _ in range(3):
            service.poll()
        assert second.dataset_id in service.needs  # from the watcher's DatasetActivated
        assert first.dataset_id in service.needs
        assert proxy.stats.log_topics[activated] == history_reads  # not read again
