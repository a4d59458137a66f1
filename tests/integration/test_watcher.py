"""The event watcher against a real anvil: order, confirmations, durable cursor, reorgs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_account import Account

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.errors import UndecodableLog
from shardkey.chain.events import ChainEvent, EventDecoder
from shardkey.chain.watcher import EventWatcher
from tests.support.hostile_rpc import ProxyConfig, hostile_rpc

FUNDING = hex(10**21)


def funded(chain: ShardKeyChain) -> Account:
    account = Account.create()
    chain.client.w3.provider.make_request("anvil_setBalance", [account.address, FUNDING])
    return account


def register(chain: ShardKeyChain, account, region: str) -> None:
    chain.holders.register(account, os.urandom(32), "http://127.0.0.1:9", region, 0, 0)


def mine(chain: ShardKeyChain, blocks: int) -> None:
    for _ in range(blocks):
        chain.client.w3.provider.make_request("evm_mine", [])


def behind(chain: ShardKeyChain, url: str) -> ShardKeyChain:
    """The deployment read through ``url`` (a proxy in front of the node)."""
    return ShardKeyChain(chain.deployment, ChainClient(url))


def watcher(chain: ShardKeyChain, cursor: Path, seen: list[str], confirmations: int) -> EventWatcher:
    w = EventWatcher(chain.client, chain.contracts, cursor, start_block=chain.deployment.start_block,
                     confirmations=confirmations)
    w.on("HolderRegistered", lambda e: seen.append(e.args["region"]))
    return w


def test_events_wait_for_confirmations_and_are_handled_once(automine_chain, tmp_path: Path) -> None:
    chain, seen = automine_chain, []
    w = watcher(chain, tmp_path / "cursor.json", seen, confirmations=2)
    for region in ("a", "b", "c"):
        register(chain, funded(chain), region)
    assert w.poll_once() == 1 and seen == ["a"]  # b and c are 1 and 0 blocks deep
    mine(chain, 2)
    assert w.poll_once() == 2 and seen == ["a", "b", "c"]
    assert w.poll_once() == 0
    restarted = watcher(chain, tmp_path / "cursor.json", seen, confirmations=2)
    mine(chain, 3)
    assert restarted.poll_once() == 0 and seen == ["a", "b", "c"]


def test_cursor_resumes_inside_a_block(automine_chain, tmp_path: Path) -> None:
    chain, seen = automine_chain, []
    register(chain, funded(chain), "a")
    mine(chain, 1)
    crashing = watcher(chain, tmp_path / "cursor.json", seen, confirmations=1)
    calls = []

    def crash_on_second(event: ChainEvent) -> None:
        calls.append(event.name)
        if event.name == "HolderActivated":
            raise RuntimeError("killed mid-block")

    crashing.on("HolderActivated", crash_on_second)
    holder = funded(chain)
    register(chain, holder, "b")
    chain.holders.activate(chain.admin, holder.address)
    mine(chain, 1)
    with pytest.raises(RuntimeError):
        crashing.poll_once()
    assert seen == ["a", "b"]
    resumed = watcher(chain, tmp_path / "cursor.json", seen, confirmations=1)
    activated = []
    resumed.on("HolderActivated", lambda e: activated.append(e.args["holder"]))
    resumed.poll_once()
    assert seen == ["a", "b"] and activated == [holder.address]


def test_reorg_shallower_than_confirmations_never_reaches_handlers(automine_chain, tmp_path: Path) -> None:
    chain, seen = automine_chain, []
    w = watcher(chain, tmp_path / "cursor.json", seen, confirmations=2)
    register(chain, funded(chain), "orphan")
    assert w.poll_once() == 0
    chain.client.w3.provider.make_request("anvil_reorg", [1, []])
    mine(chain, 3)
    assert w.poll_once() == 0 and seen == []
    assert chain.holders.addresses() == []


def test_reorg_deeper_than_confirmations_rewinds_and_replays(automine_chain, tmp_path: Path) -> None:
    chain, seen = automine_chain, []
    w = watcher(chain, tmp_path / "cursor.json", seen, confirmations=1)
    replacement = funded(chain)
    mine(chain, 1)  # the funding must be in a block older than the reorg
    register(chain, funded(chain), "old")
    mine(chain, 1)
    assert w.poll_once() == 1 and seen == ["old"]
    fn = chain.holders.contract.functions.registerHolder(os.urandom(32), "http://x", "new", 0, 0)
    tx = fn.build_transaction({"from": replacement.address, "nonce": 0, "gas": 500_000,
                               "chainId": chain.client.chain_id})
    raw = "0x" + replacement.sign_transaction(tx).raw_transaction.hex()
    chain.client.w3.provider.make_request("anvil_reorg", [2, [[raw, 0]]])
    mine(chain, 1)
    w.poll_once()
    assert seen == ["old", "new"]
    assert [chain.holders.holder(a).region for a in chain.holders.addresses()] == ["new"]


def test_unknown_event_fails_loudly(automine_chain) -> None:
    chain = automine_chain
    full = chain.holders.contract
    partial_abi = [e for e in full.abi if e.get("name") != "HolderRegistered"]
    partial = chain.client.w3.eth.contract(address=full.address, abi=partial_abi)
    register(chain, funded(chain), "x")
    logs = chain.client.w3.eth.get_logs({"address": full.address, "fromBlock": 0})
    with pytest.raises(UndecodableLog, match="unknown event"):
        EventDecoder({"HolderRegistry": partial}).decode_all(logs)


def test_the_node_is_asked_for_the_handled_events_only(automine_chain, tmp_path: Path) -> None:
    """A KOS member handling approvals must not download every release of a burst: the log
    queries name the handled events' topics, and events of other names never arrive."""
    chain = automine_chain
    holder = funded(chain)
    register(chain, holder, "a")
    chain.holders.update(holder, os.urandom(32), "http://127.0.0.1:10")  # HolderUpdated: not handled
    mine(chain, 1)
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(range_cap=None)) as proxy:
        seen: list[str] = []
        w = watcher(behind(chain, proxy.url), tmp_path / "cursor.json", seen, confirmations=1)
        w.on("HolderUpdated", lambda e: seen.append("updated"))
        assert w.poll_once() == 2 and seen == ["a", "updated"]
        handled = tuple(w.decoder.topics(["HolderRegistered", "HolderUpdated"]))
        assert len(handled) == 2 and proxy.stats.topic_ranges
        assert all(first == handled for first, _, _ in proxy.stats.topic_ranges)
        # The node filtered: the deployment's RoleGranted and the like never came back.
        assert proxy.stats.logs_returned == 2


def test_a_watcher_without_handlers_reads_no_logs(automine_chain, tmp_path: Path) -> None:
    chain = automine_chain
    register(chain, funded(chain), "a")
    mine(chain, 1)
    with hostile_rpc(chain.client.rpc_url, ProxyConfig(range_cap=None)) as proxy:
        proxied = behind(chain, proxy.url)
        w = EventWatcher(proxied.client, proxied.contracts, tmp_path / "cursor.json",
                         start_block=chain.deployment.start_block, confirmations=1)
        assert w.poll_once() == 0 and w.cursor.block == chain.client.block_number() - 1
        assert proxy.stats.calls["eth_getLogs"] == 0


def test_a_handler_for_an_event_no_contract_emits_is_refused(automine_chain, tmp_path: Path) -> None:
    w = watcher(automine_chain, tmp_path / "cursor.json", [], confirmations=1)
    with pytest.raises(ValueError, match="no watched contract emits HolderRegisterd"):
        w.on("HolderRegisterd", lambda e: None)
    assert set(w.handlers) == {"HolderRegistered"}
