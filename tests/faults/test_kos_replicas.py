"""Two KOS replicas: exactly one token per (request, holder), the request's leader acts,
and the other replica takes over once the leader is down for ``takeover_after`` seconds
of chain time."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import Net, down, up

HOLDERS = {f"holder-{i}": 1 for i in range(1, 6)}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    home = tmp_path_factory.mktemp("devnet-replicas")
    network = up(home, "--holders", "5", "--kos-replicas", "2")
    try:
        yield network
    finally:
        down(home)


def _replicas(net: Net) -> list[str]:
    return [k["name"] for k in net.info["kos"]]  # leader order, as in every replica's settings


def _leader(net: Net, rid: int) -> str:
    names = _replicas(net)
    return names[rid % len(names)]


def _token_senders(net: Net, rid: int) -> set[str]:
    w3 = net.chain.client.w3
    return {net.name_of(w3.eth.get_transaction(log["transactionHash"])["from"])
            for log in net.events("retrievals", "TokenIssued", requestId=rid)}


def test_two_replicas_issue_exactly_one_token_per_holder(net: Net, tmp_path: Path) -> None:
    assert _replicas(net) == ["kos", "kos-2"]
    dataset = net.store(tmp_path, os.urandom(5000))
    rids = [net.request(dataset) for _ in range(4)]
    for rid in rids:
        net.wait_for(f"tokens of request {rid}", lambda r=rid: len(net.tokens(r)) == 5)
    time.sleep(2)  # give a slower replica the chance to (wrongly) issue again
    for rid in rids:
        assert net.tokens(rid) == HOLDERS
        assert _token_senders(net, rid) == {_leader(net, rid)}  # well within takeover_after


def test_other_replica_takes_over_when_the_leader_is_down(net: Net, tmp_path: Path) -> None:
    data = os.urandom(5000)
    dataset = net.store(tmp_path, data)
    next_id = len(net.events("retrievals", "RetrievalRequested")) + 1
    leader = _leader(net, next_id)
    other = next(n for n in _replicas(net) if n != leader)
    net.kill(leader)
    rid = net.request(dataset)
    assert rid == next_id
    time.sleep(3)
    assert net.tokens(rid) == {}  # the other replica waits for its turn
    net.rpc("evm_increaseTime", [11])  # past approvedAt + takeover_after (10 s of chain time)
    net.wait_for("the takeover", lambda: len(net.tokens(rid)) == 5, timeout=60)
    assert _token_senders(net, rid) == {other}
    net.start(leader)  # comes back with the request pending: finds it served, drops it
    out = tmp_path / "restored.bin"
    net.fetch(rid, out)
    assert out.read_bytes() == data
    time.sleep(2)
    assert net.tokens(rid) == HOLDERS
    assert net.deliveries(rid) == HOLDERS
