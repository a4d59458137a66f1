"""Batched chain reads (:meth:`shardkey.chain.rpc.JsonRpc.batch`) behind the hostile provider
(tests/support/hostile_rpc.py in front of a real anvil): one round trip where batches are
taken, the same answers call by call where they are refused, capped or partly rate-limited."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import HolderInfo
from shardkey.chain.rpc import BATCH_LIMIT
from tests.integration.test_rpc_provider import proxied
from tests.integration.test_watcher import funded, register
from tests.support.hostile_rpc import ProxyConfig, hostile_rpc

HOLDERS = 4


@pytest.fixture
def holders(automine_chain: ShardKeyChain) -> tuple[ShardKeyChain, list[str], list[HolderInfo]]:
    """The chain, its registered holders, and their records read one call at a time from anvil."""
    chain = automine_chain
    for i in range(HOLDERS):
        register(chain, funded(chain), f"region-{i}")
    addresses = chain.holders.addresses()
    assert len(addresses) == HOLDERS
    chain.client.rpc.batches = False
    one_by_one = [chain.holders.holder(a) for a in addresses]
    chain.client.rpc.batches = True
    return chain, addresses, one_by_one


def test_records_are_read_in_one_batch_where_the_provider_takes_batches(holders) -> None:
    chain, addresses, expected = holders
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(batch_cap=None)) as proxy:
        behind = proxied(chain, proxy.url)
        assert behind.holders.holders_info(addresses) == expected
        assert proxy.stats.batches == 1 and proxy.stats.calls["eth_call"] == HOLDERS
        assert behind.client.rpc.batches


@pytest.mark.parametrize("cap", [0, HOLDERS - 1])
def test_a_provider_refusing_batches_gets_one_call_each_from_then_on(holders, cap: int) -> None:
    chain, addresses, expected = holders
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(batch_cap=cap)) as proxy:
        behind = proxied(chain, proxy.url)
        assert behind.holders.holders_info(addresses) == expected
        assert (proxy.stats.batch_refusals, proxy.stats.batches) == (1, 0)
        assert proxy.stats.calls["eth_call"] == HOLDERS  # each answered on its own after the refusal
        assert behind.holders.holders_info(addresses) == expected
        assert proxy.stats.batch_refusals == 1  # not asked to batch again
        assert proxy.stats.calls["eth_call"] == 2 * HOLDERS


def test_more_calls_than_a_batch_takes_go_as_several_batches(holders) -> None:
    """A burst of reads (a KOS member's pending requests) larger than :data:`BATCH_LIMIT`
    stays under a provider capping batches there, and keeps batching."""
    chain, addresses, expected = holders
    reads = BATCH_LIMIT + BATCH_LIMIT // 2
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(batch_cap=BATCH_LIMIT)) as proxy:
        behind = proxied(chain, proxy.url)
        assert behind.holders.holders_info([addresses[0]] * reads) == [expected[0]] * reads
        assert (proxy.stats.batches, proxy.stats.batch_refusals) == (2, 0)
        assert proxy.stats.calls["eth_call"] == reads and behind.client.rpc.batches


def test_rate_limited_items_of_a_batch_are_asked_again_on_their_own(holders) -> None:
    chain, addresses, expected = holders
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(batch_cap=None)) as proxy:
        behind = proxied(chain, proxy.url)
        proxy.config.rate_limit_next = 2  # the first two items of the batch
        assert behind.holders.holders_info(addresses) == expected
        assert proxy.stats.batches == 1 and proxy.stats.rate_limited == 2
        assert proxy.stats.calls["eth_call"] == HOLDERS + 2


def test_a_revert_inside_a_batch_raises_the_contract_error(holders) -> None:
    chain, addresses, _ = holders
    stranger = Account.create().address
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(batch_cap=None)) as proxy:
        behind = proxied(chain, proxy.url)
        with pytest.raises(TransactionReverted) as raised:
            behind.holders.holders_info([*addresses, stranger])
        assert raised.value.error == "HolderNotRegistered"
        assert proxy.stats.batches == 1 and proxy.stats.calls["eth_call"] == HOLDERS + 1


def test_receipts_of_transactions_in_flight_are_asked_together(automine_chain: ShardKeyChain) -> None:
    """``wait_many``: one round trip per poll for every transaction still unmined, each
    answered in order with its receipt or, mined and reverted, its contract error."""
    chain = automine_chain
    exiting, joining = funded(chain), funded(chain)
    register(chain, exiting, "a")
    chain.holders.activate(chain.admin, exiting.address)  # type: ignore[attr-defined]
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(range_cap=None)) as proxy:
        behind = proxied(chain, proxy.url)
        chain.client.w3.provider.make_request("evm_setAutomine", [False])
        try:
            sents = [behind.client.submit(behind.holders.contract.call("announceExit"), exiting),
                     behind.client.submit(behind.holders.contract.call(
                         "registerHolder", os.urandom(32), "http://x", "b", 0, 0), joining)]
            before = proxy.stats.round_trips["eth_getTransactionReceipt"]
            assert behind.client.receipts(sents) == [None, None]
            assert proxy.stats.round_trips["eth_getTransactionReceipt"] == before + 1
            retire_first(chain, exiting.address)  # mined ahead of the exit, which then reverts
            chain.client.w3.provider.make_request("evm_mine", [])
        finally:
            chain.client.w3.provider.make_request("evm_setAutomine", [True])
        outcomes = behind.client.wait_many(sents)
        assert proxy.stats.round_trips["eth_getTransactionReceipt"] == before + 2
        assert proxy.stats.calls["eth_getTransactionReceipt"] == 4
    reverted, registered = outcomes
    assert isinstance(reverted, TransactionReverted) and reverted.error == "HolderInvalidStatus"
    assert not isinstance(registered, TransactionReverted) and registered["status"] == 1
    assert chain.holders.holder(joining.address).region == "b"


def retire_first(chain: ShardKeyChain, holder: str) -> None:
    """The admin retires ``holder`` with a tip that puts it first in the next block."""
    admin = chain.admin  # type: ignore[attr-defined]
    w3 = chain.client.w3
    tx = chain.holders.contract.functions.retireHolder(holder).build_transaction({
        "from": admin.address, "nonce": w3.eth.get_transaction_count(admin.address, "pending"),
        "gas": 200_000, "maxPriorityFeePerGas": 10**11, "maxFeePerGas": 10**12,
        "chainId": chain.client.chain_id})
    w3.eth.send_raw_transaction(admin.sign_transaction(tx).raw_transaction)
