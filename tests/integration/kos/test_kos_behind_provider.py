"""A member behind a hostile provider (capped log ranges, 429s, a lagging head) releases its
shares, and its dataset look-up reads the registration's blocks, not the whole history."""

from __future__ import annotations

import time

from kos.orchestrator import Outcome
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.errors import ChainError
from shardkey.chain.retry import RetryPolicy
from shardkey.service.loop import Backoff
from tests.support.hostile_rpc import ProxyConfig, hostile_rpc

FAST = RetryPolicy(attempts=12, total=20.0, backoff=Backoff(base=0.01, cap=0.05))


def test_member_behind_a_range_capping_rate_limiting_provider_releases(world) -> None:
    dataset = world.dataset()
    world.dev.mine(40)  # the history is longer than the provider's cap
    request_id = world.request(dataset)
    world.approve(request_id)
    config = ProxyConfig(range_cap=10, rate_limit_share=0.1, lag_every=11, max_lag=2)
    with hostile_rpc(world.dev.client.rpc_url, config) as proxy:
        chain = ShardKeyChain(world.chain.deployment, ChainClient(proxy.url, retry=FAST))
        kos = world.member(0, state="member-proxied", chain=chain)
        outcomes: dict[int, Outcome] = {}
        deadline = time.monotonic() + 60
        while request_id not in outcomes:
            assert time.monotonic() < deadline, "the member never released behind the provider"
            try:
                outcomes.update(kos.poll().outcomes)
            except ChainError:  # the poll loop logs it at WARNING and polls again
                pass
        assert proxy.stats.refusals and proxy.stats.rate_limited
    assert outcomes[request_id] == Outcome.ISSUED
    world.serve(request_id, members=(1,))
    world.assert_served(request_id, dataset)


def test_the_dataset_look_up_reads_the_registration_blocks_not_the_history(world) -> None:
    spaced = [hex(60), hex(1)]  # 60 blocks a second apart: 60 timestamps
    world.dev.client.w3.provider.make_request("anvil_mine", spaced)
    dataset = world.dataset()
    world.dev.client.w3.provider.make_request("anvil_mine", spaced)
    history = world.dev.client.block_number() - world.chain.deployment.start_block
    with hostile_rpc(world.dev.client.rpc_url, ProxyConfig(range_cap=10)) as proxy:
        chain = ShardKeyChain(world.chain.deployment, ChainClient(proxy.url, retry=FAST))
        registration = chain.datasets.registration(dataset.dataset_id, world.chain.deployment.start_block)
        # Reading the whole history would take over a dozen capped queries.
        assert history > 120 and proxy.stats.calls["eth_getLogs"] <= 2
    assert registration == world.chain.datasets.registration(dataset.dataset_id)


def test_a_member_reads_its_pending_requests_and_receipts_in_batches(world) -> None:
    """Six releases in one poll: the requests, this member's release states and the
    transactions' receipts are each one round trip, not one call per request; once a release
    is seen mined, the request is read only to confirm it at depth."""
    dataset = world.dataset()
    requests = [world.request(dataset) for _ in range(6)]
    for request_id in requests:
        world.approve(request_id)
    selector = "0x" + world.chain.retrievals.contract.call("request", 1).data[:4].hex()
    with hostile_rpc(world.dev.client.rpc_url, ProxyConfig(range_cap=None)) as proxy:
        chain = ShardKeyChain(world.chain.deployment, ChainClient(proxy.url, retry=FAST))
        kos = world.member(0, state="member-batched", chain=chain)
        outcomes = kos.poll().outcomes  # the approvals are all in: one poll sends every release
        assert outcomes == {r: Outcome.ISSUED for r in requests}
        stats = proxy.stats
        receipts, receipt_trips = stats.calls["eth_getTransactionReceipt"], \
            stats.round_trips["eth_getTransactionReceipt"]
        assert receipts >= len(requests) and receipt_trips <= receipts / len(requests) + 1
        # the six requests and release states: two round trips
        assert stats.calls["eth_call"] - stats.round_trips["eth_call"] >= 2 * (len(requests) - 1)
        assert stats.selectors[selector] == len(requests)
        deadline = time.monotonic() + 30
        while len(kos.pending):
            assert time.monotonic() < deadline, "the releases were never confirmed"
            kos.poll()
        assert stats.selectors[selector] == 2 * len(requests)  # read once more: at depth
