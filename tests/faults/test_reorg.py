"""Chain reorganisations (``anvil_reorg``) against the running services (confirmations = 1).

Interval mining is paused around each reorg so block numbers are deterministic: with
mining paused a block is mined only when a transaction arrives (automine).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardkey.chain.model import RequestStatus
from tests.faults.conftest import Net

HOLDERS = {f"holder-{i}": 1 for i in range(1, 6)}
ONE_APPROVAL = """\
requesters: [requester]
approvals:
  - {group: client, members: [client-rep], required: 1}
threshold: 3
"""


@pytest.fixture
def paused(net: Net) -> Iterator[None]:
    _pause(net)
    try:
        yield
    finally:
        net.rpc("evm_setIntervalMining", [1])


def _pause(net: Net) -> None:
    """Stop interval mining; keep automine (setting the interval to 0 turns both off)."""
    net.rpc("evm_setIntervalMining", [0])
    net.rpc("evm_setAutomine", [True])


def _head(net: Net) -> int:
    return int(net.chain.client.w3.eth.block_number)


def test_orphaned_approval_shallower_than_confirmations_is_never_acted_on(
        net: Net, tmp_path: Path, paused: None) -> None:
    net.rpc("evm_setIntervalMining", [1])
    dataset = net.store(tmp_path, os.urandom(5000), policy=ONE_APPROVAL)
    out = net.json("request", dataset)
    rid = int(out["request"])
    assert out["state"] == "pending"
    _pause(net)
    time.sleep(1.5)  # let in-flight interval blocks land
    head = _head(net)
    fresh = net.fresh_chain().retrievals
    fresh.approve(net.account("client-rep"), fresh.approval_subject(rid))
    assert _head(net) == head + 1  # the approval is in the head block: 0 confirmations
    assert net.chain.retrievals.request(rid).status == RequestStatus.APPROVED
    net.rpc("anvil_reorg", [1, []])  # the approval's block is replaced by an empty one
    assert net.chain.retrievals.request(rid).status == RequestStatus.PENDING
    net.rpc("evm_setIntervalMining", [1])
    time.sleep(5)  # several blocks: the orphaned approval would be confirmed by now
    assert net.tokens(rid) == {} and net.deliveries(rid) == {}
    assert not net.events("retrievals", "RetrievalApproved", requestId=rid)
    # The chain goes on: approve for real, and the request completes once.
    fresh = net.fresh_chain().retrievals
    fresh.approve(net.account("client-rep"), fresh.approval_subject(rid))
    net.wait_for("deliveries", lambda: len(net.deliveries(rid)) == 5)
    net.fetch(rid, tmp_path / "restored.bin")
    assert net.tokens(rid) == HOLDERS and net.deliveries(rid) == HOLDERS


def test_served_request_reorged_away_then_its_id_reused_is_served_afresh(
        net: Net, tmp_path: Path, paused: None) -> None:
    """A reorg deeper than the confirmations removes a fully served request; the next
    request gets the same id on the new branch, with another ephemeral key. KOS and
    holders must act on the new request as the chain has it (no cache keyed by the id
    alone, nonces re-read after their transactions vanished) and it restores."""
    data = os.urandom(6000)
    net.rpc("evm_setIntervalMining", [1])
    dataset = net.store(tmp_path, data)
    _pause(net)
    time.sleep(1.5)
    fork = _head(net)
    rid = net.request(dataset)  # open policy: approved at once
    net.rpc("evm_setIntervalMining", [1])
    net.wait_for("first deliveries", lambda: len(net.deliveries(rid)) == 5)
    old_key = net.chain.retrievals.request(rid).ephemeral_key_hash
    _pause(net)
    time.sleep(1.5)
    net.rpc("anvil_reorg", [_head(net) - fork, []])  # the request and everything after it
    retrievals = net.chain.retrievals
    assert net.chain.client.read(retrievals.contract, "requestCount") == rid - 1
    net.rpc("evm_setIntervalMining", [1])
    assert net.request(dataset) == rid  # the same id, a new request
    assert net.chain.retrievals.request(rid).ephemeral_key_hash != old_key
    net.wait_for("new deliveries", lambda: len(net.deliveries(rid)) == 5, timeout=90)
    out = tmp_path / "restored.bin"
    net.fetch(rid, out)
    assert out.read_bytes() == data
    assert net.tokens(rid) == HOLDERS and net.deliveries(rid) == HOLDERS
