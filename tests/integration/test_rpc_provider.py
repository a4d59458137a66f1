"""Chain access behind a hostile provider (tests/support/hostile_rpc.py in front of a real
anvil): capped log ranges with every refusal message, 429s with Retry-After, a lagging
head, a dead endpoint to fail over from; and transactions replaced when not mined."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.errors import ChainError
from shardkey.chain.events import EventDecoder
from shardkey.chain.fees import FeeCeilingError
from shardkey.chain.retry import RetryPolicy
from shardkey.chain.rpc import quantity
from shardkey.chain.watcher import EventWatcher
from shardkey.service.loop import Backoff
from tests.integration.test_watcher import funded, mine, register
from tests.support.hostile_rpc import REFUSALS, ProxyConfig, hostile_rpc

FAST = RetryPolicy(attempts=12, total=20.0, backoff=Backoff(base=0.01, cap=0.05), bench_for=5.0)


def proxied(chain: ShardKeyChain, url: str | list[str]) -> ShardKeyChain:
    return ShardKeyChain(chain.deployment, ChainClient(url, retry=FAST))


WATCHED = ("HolderRegistered", "RoleGranted", "HolderActivated")


def events(chain: ShardKeyChain) -> list[tuple[tuple[int, int], str]]:
    """(position, name) of every event of the deployment, read straight from anvil in one
    query (no cap), in order."""
    decoder = EventDecoder(chain.contracts)
    logs = chain.client.rpc.call("eth_getLogs", [{"address": decoder.addresses,
                                                  "fromBlock": hex(chain.deployment.start_block)}])
    return [(e.position, e.name) for e in decoder.decode_all(logs)]


def catch_up(watcher: EventWatcher, head: int, limit: float = 30.0) -> None:
    """Poll until the cursor reaches ``head`` (a lagging provider ends a poll early)."""
    deadline = time.monotonic() + limit
    while watcher.cursor.block < head:
        assert time.monotonic() < deadline, f"watcher stuck at {watcher.cursor.block} < {head}"
        try:
            watcher.poll_once()
        except ChainError:  # what run() logs at WARNING and retries
            pass


def test_watcher_behind_a_hostile_provider_sees_every_event_once_and_catches_up(
        automine_chain: ShardKeyChain, tmp_path: Path) -> None:
    chain = automine_chain
    for i in range(6):
        register(chain, funded(chain), f"early-{i}")
        mine(chain, 7)
    config = ProxyConfig(range_cap=10, rate_limit_share=0.15, lag_every=9, max_lag=3)
    with hostile_rpc(chain.client.rpc_url, config) as proxy:
        behind = proxied(chain, proxy.url)
        seen: list[tuple[int, int]] = []
        watcher = EventWatcher(behind.client, behind.contracts, tmp_path / "cursor.json",
                               start_block=chain.deployment.start_block, confirmations=1)
        for name in WATCHED:
            watcher.on(name, lambda e: seen.append(e.position))
        catch_up(watcher, chain.client.block_number() - 1)
        # Fall 35 blocks (with events) behind a 10-block cap, then catch up.
        for i in range(5):
            register(chain, funded(chain), f"late-{i}")
            mine(chain, 6)
        assert chain.client.block_number() - 1 - watcher.cursor.block >= 35
        catch_up(watcher, chain.client.block_number() - 1)
        stats = proxy.stats
    watched = [position for position, name in events(chain) if name in WATCHED
               and position[0] <= watcher.cursor.block]
    assert seen == watched and len(seen) == len(set(seen)) and len(seen) >= 11
    refused = sum(stats.refusals.values()) - stats.refusals["head"]
    assert 0 < refused < len(stats.log_ranges) / 3  # adapts, rather than being refused each time
    assert len(stats.refusals) >= 3 and stats.refusals["head"] > 0
    assert stats.rate_limited > 0 and stats.lagged > 0


def test_look_ups_behind_the_provider_return_what_the_node_has(automine_chain: ShardKeyChain) -> None:
    chain = automine_chain
    for i in range(4):
        register(chain, funded(chain), f"r-{i}")
        mine(chain, 12)
    direct = chain.holders.contract.get_logs("HolderRegistered", chain.deployment.start_block)
    for index, (template, _code) in enumerate(REFUSALS):  # each refusal message on its own
        config = ProxyConfig(range_cap=10, rate_limit_share=0.2, lag_every=5, refusals=[index])
        with hostile_rpc(chain.client.rpc_url, config) as proxy:
            behind = proxied(chain, proxy.url)
            found = behind.holders.contract.get_logs("HolderRegistered", chain.deployment.start_block)
            assert proxy.stats.refusals[template.split()[0]] > 0
        assert [e.position for e in found] == [e.position for e in direct] and len(found) == 4


def test_a_dead_endpoint_is_benched_and_the_next_one_used(automine_chain: ShardKeyChain,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    chain = automine_chain
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(range_cap=None, down=True)) as dead, \
            hostile_rpc(chain.client.rpc_url, ProxyConfig(range_cap=None)) as alive:
        client = ChainClient([dead.url + "?apikey=s3cret", alive.url], retry=FAST)
        with caplog.at_level("WARNING"):
            assert client.block_number() == chain.client.block_number()
            assert client.block_number() == chain.client.block_number()
        assert dead.stats.calls["eth_blockNumber"] == 1  # benched after its 503
        assert alive.stats.calls["eth_blockNumber"] == 2
        assert "set aside" in caplog.text and "s3cret" not in caplog.text and "proxy-key" not in caplog.text
        assert all(r.exc_info is None for r in caplog.records)  # transient: no traceback
        dead.config.down = False
        alive.config.down = True
        only_dead = ChainClient([alive.url + "?apikey=s3cret"], retry=RetryPolicy(
            attempts=3, total=5.0, backoff=Backoff(base=0.01, cap=0.02)))
        with pytest.raises(ChainError, match=r"HTTP 503 \(gave up after 3 attempt") as caught:
            only_dead.block_number()
        assert "s3cret" not in str(caught.value) and "proxy-key" not in str(caught.value)


def test_rate_limits_are_retried_after_the_wait_the_provider_asks(automine_chain: ShardKeyChain) -> None:
    chain = automine_chain
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(range_cap=None, rate_limit_share=1.0,
                                                       retry_after="1")) as proxy:
        sleeps: list[float] = []
        client = ChainClient(proxy.url, retry=RetryPolicy(attempts=3, total=10.0, sleep=sleeps.append))
        with pytest.raises(ChainError, match="HTTP 429"):
            client.block_number()
        assert sleeps == [1.0, 1.0] and proxy.stats.rate_limited == 3
        proxy.config.rate_limit_share, proxy.config.rate_limit_next = 0.0, 2
        sleeps.clear()
        assert client.block_number() == chain.client.block_number()  # the third attempt
        assert sleeps == [1.0, 1.0] and proxy.stats.rate_limited == 5


def pooled(chain: ShardKeyChain, sender: str) -> list[dict[str, str]]:
    """The pending transactions of ``sender`` in anvil's pool."""
    pool = chain.client.w3.provider.make_request("txpool_content", [])["result"]["pending"]
    return [tx for address, txs in pool.items() if address.lower() == sender.lower() for tx in txs.values()]


def test_a_transaction_not_mined_in_time_is_replaced_and_the_replacement_found(
        automine_chain: ShardKeyChain) -> None:
    chain = automine_chain
    account = funded(chain)
    client = ChainClient(chain.client.rpc_url, replace_after=0.2, max_fee_gwei=50)
    chain.client.w3.provider.make_request("evm_setAutomine", [False])
    try:
        fn = chain.holders.contract.call("registerHolder", b"\x01" * 32, "http://127.0.0.1:9", "stuck", 0, 0)
        sent = client.submit(fn, account)
        (first,) = pooled(chain, account.address)
        first_fee = int(first["maxFeePerGas"], 16)
        assert client.receipt(sent) is None
        time.sleep(0.3)
        assert client.receipt(sent) is None  # not mined in time: replaced, same nonce, higher fee
        (only,) = pooled(chain, account.address)
        assert only["hash"] != sent.hex and int(only["nonce"], 16) == sent.nonce
        assert int(only["maxFeePerGas"], 16) * 8 >= first_fee * 9
        mine(chain, 1)
        receipt = client.receipt(sent)
        assert receipt is not None and "0x" + receipt["transactionHash"].hex() == only["hash"]
    finally:
        chain.client.w3.provider.make_request("evm_setAutomine", [True])


def test_fees_above_max_fee_gwei_are_refused_and_nothing_is_sent(automine_chain: ShardKeyChain) -> None:
    chain = automine_chain
    account = funded(chain)
    client = ChainClient(chain.client.rpc_url, max_fee_gwei=1e-9)  # 1 wei: below any base fee
    fn = chain.holders.contract.call("registerHolder", b"\x02" * 32, "http://127.0.0.1:9", "cheap", 0, 0)
    with pytest.raises(FeeCeilingError, match="above max_fee_gwei"):
        client.submit(fn, account)
    assert chain.client.raw("eth_getTransactionCount", [account.address, "pending"]) == "0x0"


def test_an_endpoint_that_keeps_rate_limiting_is_benched(automine_chain: ShardKeyChain) -> None:
    chain = automine_chain
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(range_cap=None, rate_limit_share=1.0)) as busy, \
            hostile_rpc(chain.client.rpc_url, ProxyConfig(range_cap=None)) as calm:
        client = ChainClient([busy.url, calm.url], retry=FAST)
        for _ in range(3):
            assert client.block_number() == chain.client.block_number()
        assert busy.stats.rate_limited == FAST.bench_after  # then set aside: no more calls to it
        assert calm.stats.calls["eth_blockNumber"] == 3


def test_a_poll_on_an_unchanged_head_is_one_call_and_a_new_block_is_read_in_full(
        automine_chain: ShardKeyChain, tmp_path: Path) -> None:
    chain = automine_chain
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(rate_limit_share=0.0)) as proxy:
        behind = proxied(chain, proxy.url)
        seen: list[tuple[int, int]] = []
        watcher = EventWatcher(behind.client, behind.contracts, tmp_path / "cursor.json",
                               start_block=chain.deployment.start_block, confirmations=1)
        watcher.on("HolderRegistered", lambda e: seen.append(e.position))
        catch_up(watcher, chain.client.block_number() - 1)
        before = sum(proxy.stats.calls.values())
        for _ in range(5):
            assert watcher.poll_once() == 0
        assert sum(proxy.stats.calls.values()) - before == 5  # the head, nothing else
        register(chain, funded(chain), "after")
        mine(chain, 1)
        assert watcher.poll_once() == 1 and len(seen) >= 1  # a new head: reorg check and logs
        assert proxy.stats.calls["eth_getLogs"] >= 1


def test_blocks_at_finds_every_timestamps_blocks_and_reads_few_for_a_recent_one(
        automine_chain: ShardKeyChain) -> None:
    """Blocks sharing timestamps, gaps and the head: the range each timestamp names equals a
    scan of every block; a timestamp of the last few blocks costs a handful of reads through
    the provider (the search gallops back from the head), not two bisections of the history."""
    client = automine_chain.client
    client.raw("anvil_mine", [hex(500)])  # a history to search, as a testnet's is
    start = client.block_number() + 1
    base = client.latest_timestamp() + 1000
    for offset in [0, 0, 1, 1, 1, 3, 4, 4, 10, *range(11, 60), 60, 60, 61]:
        client.raw("evm_setNextBlockTimestamp", [base + offset])
        client.raw("evm_mine", [])
    head = client.block_number()
    stamps = {n: quantity(client.raw("eth_getBlockByNumber", [hex(n), False])["timestamp"])
              for n in range(start, head + 1)}
    for timestamp in sorted(set(stamps.values())):
        blocks = [n for n, t in stamps.items() if t == timestamp]
        assert client.blocks_at(timestamp, start) == (blocks[0], blocks[-1]), timestamp
    first_after_gap = min(n for n, t in stamps.items() if t > base + 1)
    assert client.blocks_at(base + 2, start)[0] == first_after_gap  # no block stamped with it
    assert client.blocks_at(base + 100, start)[0] == head + 1  # after the head
    with hostile_rpc(client.rpc_url, ProxyConfig(rate_limit_share=0.0)) as proxy:
        behind = proxied(automine_chain, proxy.url).client
        assert behind.blocks_at(base + 60, automine_chain.deployment.start_block) == (head - 2, head - 1)
        assert proxy.stats.calls["eth_getBlockByNumber"] <= 8, proxy.stats.calls
