"""A holder answers a token, and serves the first download of a dataset it took custody of,
from what its watcher and its custody already handed it: the request's event (attestation,
ephemeral key, block) and the registration. Before, each searched the chain's blocks for the
request's or the registration's timestamp, then queried their logs: 5-12 reads one after
another, each a round trip to the provider. Behind a proxy that counts what it forwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from holder_agent.api import create_app
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from tests.support.hostile_rpc import HostileRpc, ProxyConfig, hostile_rpc


@pytest.fixture
def proxy(world, tmp_path: Path) -> Iterator[HostileRpc]:
    """The world's agent, rebuilt on a connection through a counting proxy."""
    with hostile_rpc(world.dev.client.rpc_url, ProxyConfig(range_cap=None)) as running:
        chain = ShardKeyChain(world.dev.deployment, ChainClient(running.url))
        world.agent = world.make_agent(tmp_path / "proxied", chain=chain)
        world.http = TestClient(create_app(world.agent.api))
        yield running


def _topic(world, contract: str, event: str) -> str:
    return "0x" + getattr(world.chain, contract).contract.codec.event(event).topic.hex()


def test_a_token_is_answered_without_searching_the_chain_for_its_request(world, proxy) -> None:
    built = world.active_dataset()
    req = world.request(built)
    world.unlock(req.request_id)
    blocks, queries = proxy.stats.numbered_blocks, len(proxy.stats.topic_ranges)
    world.settle()  # one poll: the request, its approval, the releases and the token
    assert world.chain.retrievals.delivered(req.request_id, world.me)
    requested = _topic(world, "retrievals", "RetrievalRequested")
    assert not [q for q in proxy.stats.topic_ranges[queries:] if q[0] == requested]
    assert proxy.stats.numbered_blocks - blocks <= 2  # the watcher's reorg check and range end


def test_the_first_download_of_a_dataset_in_custody_reads_no_registration(world, proxy) -> None:
    built = world.active_dataset()
    req = world.request(built)
    blocks, queries = proxy.stats.numbered_blocks, len(proxy.stats.topic_ranges)
    for index in built.my_shards(world.me):
        reply = world.get(req.requester, f"/v1/datasets/{built.hex}/shards/{index}?request={req.request_id}")
        assert reply.status_code == 200, reply.text
        assert reply.content == built.shards[index]
    registered = _topic(world, "datasets", "DatasetRegistered")
    assert not [q for q in proxy.stats.topic_ranges[queries:] if q[0] == registered]
    assert proxy.stats.numbered_blocks == blocks  # no search for the registration's blocks


def test_a_holders_view_of_a_request_is_one_round_trip_and_the_four_reads(world, proxy) -> None:
    built = world.active_dataset()
    req = world.request(built)
    chain, direct = world.agent.chain, world.chain.retrievals  # through the proxy, and not
    views = []
    for stage in ("approved", "delivered"):
        batches, calls = proxy.stats.batches, proxy.stats.calls["eth_call"]
        view = chain.retrievals.holder_view(req.request_id, world.me)
        assert (proxy.stats.batches - batches, proxy.stats.calls["eth_call"] - calls) == (1, 4), stage
        assert (view.delivered, view.is_open, view.token_issued, view.request) == (
            direct.delivered(req.request_id, world.me), direct.is_open(req.request_id),
            direct.token_issued(req.request_id, world.me), direct.request(req.request_id)), stage
        views.append(view)
        if stage == "approved":
            world.unlock(req.request_id)
            world.settle()
    assert not views[0].delivered and not views[0].token_issued
    assert views[1].delivered and views[1].token_issued
