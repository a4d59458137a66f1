"""Hostile repairers and hostile holders around keyless repair, on a real devnet (anvil, the
real contracts, holder agent processes over HTTP, ``shardkey repair`` as a subprocess).

- A repairer uploads a wrong rebuilt shard (right length, not its leaf) to the holder the
  shard is assigned to: the holder answers 4xx, keeps nothing (no committed, staged or
  incoming file), sends no ``confirmShardPlacement``; the chain still shows the shard
  pending there and placed at the failed holder.
- A repairer uploads to a holder that is not the shard's pending holder, or a shard that is
  not assigned at all: refused (409), nothing kept.
- A holder serves a wrong shard on ``GET /v1/repair/...``: the repairer skips it, reads
  another, and every repaired shard matches its leaf; with fewer than ``k`` good shards the
  repair exits 7 naming the stripe and the bad holders, nothing is assigned, and every other
  stripe is still tried.

k = 3, p = 2 over 7 holders (every Active holder is a shard holder, shard i at holder
i mod 7): stripe 0 is shards 0-4 on holders 0-4, stripe 1 shards 5-9 on holders 5, 6, 0, 1,
2, stripe 2 shards 10-14 on 3, 4, 5, 6, 0. Holder 0 is marked failed: shards 0, 7 (and 14)
are lost. A repairer reads the first three other shards of a stripe in index order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shardkey.chain.chaintime import ChainTime
from shardkey.httpauth import HEADER_SHARD_HASH, sign_request
from tests.faults.conftest import Net, running
from tests.support.http_server import serve

DATA_SIZE = 30_000  # 3 stripes of 3 x 4 KiB: 15 shards
# Two stripes (10 shards) where holders are replaced by hostile servers: stripe 2's lost shard
# would be placed on holder 1 or 2, and a hostile server is no place for it.
TWO_STRIPES = 20_000
REPAIR_FAILED = 7


@dataclass
class Lost:
    """Four datasets (one per test) on the 7 holders, then holder 0 (their first shard holder) failed."""

    datasets: dict[str, str]  # test -> dataset id hex
    holders: list[str]  # shard holder order (addresses), the same for all four
    failed: str

    def ds(self, name: str) -> bytes:
        return bytes.fromhex(self.datasets[name][2:])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from running(tmp_path_factory, 7)


@pytest.fixture(scope="module")
def lost(net: Net, tmp_path_factory: pytest.TempPathFactory) -> Lost:
    tmp = tmp_path_factory.mktemp("repair-hostile")
    sizes = {"put": DATA_SIZE, "pending": DATA_SIZE, "get-one": TWO_STRIPES, "get-two": TWO_STRIPES}
    datasets = {name: net.store(tmp, os.urandom(size)) for name, size in sizes.items()}
    orders = {net.chain.datasets.dataset(bytes.fromhex(d[2:])).params.shard_holders
              for d in datasets.values()}
    assert len(orders) == 1 and len(next(iter(orders))) == 7, orders
    holders = list(next(iter(orders)))
    assert [net.chain.datasets.dataset(bytes.fromhex(datasets[n][2:])).params.stripes
            for n in sizes] == [3, 3, 2, 2]
    net.fresh_chain().holders.mark_failed(net.account("admin"), holders[0])
    return Lost(datasets, holders, holders[0])


def _store(net: Net, address: str) -> Path:
    return Path(net.service(net.name_of(address))["data_dir"]) / "store"


def _shard_file(net: Net, address: str, ds: bytes, index: int) -> Path:
    return _store(net, address) / "datasets" / ds.hex() / "shards" / str(index)


def _leaves(net: Net, ds: bytes) -> list[bytes]:
    return list(net.chain.datasets.registration(ds, net.chain.deployment.start_block).shard_hashes)


def _events(net: Net, name: str, ds: bytes) -> list[dict[str, object]]:
    return [dict(e.args) for e in net.chain.datasets.contract.get_logs(name, net.chain.deployment.start_block,
                                                                        datasetId=ds)]


def _put(net: Net, holder: str, ds: bytes, index: int, body: bytes, declared: bytes) -> httpx.Response:
    """A signed PUT /v1/repair/... from the owner to ``holder`` over real HTTP."""
    path = f"/v1/repair/datasets/0x{ds.hex()}/shards/{index}"
    now = ChainTime.of(net.chain.client).now()
    headers = sign_request(net.account("owner"), holder, "PUT", path, body, now, body_sha256=declared)
    endpoint = net.service(net.name_of(holder))["endpoint"]
    return httpx.put(endpoint + path, content=body, headers=headers, timeout=60)


def _kept(net: Net, holder: str, ds: bytes, index: int) -> list[Path]:
    """Every file the holder has for shard ``index`` of ``ds``: committed, staged, in flight."""
    root = _store(net, holder)
    staged = [p for p in (root / "staging").rglob(str(index)) if ds.hex() in p.parts and p.is_file()]
    incoming = [p for p in (root / "incoming").iterdir() if p.is_file()]
    committed = [p for p in [_shard_file(net, holder, ds, index)] if p.exists()]
    return staged + incoming + committed


def test_a_wrong_rebuilt_shard_is_refused_by_its_assigned_holder(net: Net, lost: Lost) -> None:
    ds, holders = lost.ds("put"), lost.holders
    plan = json.loads(net.run("repair", lost.datasets["put"], "--dry-run", "--json").stdout)
    target = next(s["new_holder"] for s in plan["shards"] if s["index"] == 0)
    assert target in holders[5:]  # outside stripe 0
    net.fresh_chain().datasets.assign_shard(net.account("owner"), ds, 0, target)
    leaf = _leaves(net, ds)[0]
    good = _shard_file(net, lost.failed, ds, 0).read_bytes()  # the failed holder's disk is intact
    assert hashlib.sha256(good).digest() == leaf
    wrong = bytes([good[0] ^ 1]) + good[1:]

    declared_leaf = _put(net, target, ds, 0, wrong, leaf)  # claims the leaf, sends other bytes
    assert declared_leaf.status_code == 400 and declared_leaf.json()["error"] == "body_mismatch", \
        declared_leaf.text
    honest_hash = _put(net, target, ds, 0, wrong, hashlib.sha256(wrong).digest())
    assert honest_hash.status_code == 422 and honest_hash.json()["error"] == "leaf_mismatch", honest_hash.text

    assert _kept(net, target, ds, 0) == []
    assert _events(net, "ShardRepaired", ds) == []
    chain = net.fresh_chain()
    assert chain.datasets.pending_shard_holder(ds, 0) == target
    assert chain.datasets.shard_holder_of(ds, 0) == lost.failed

    # the honest repairer then finishes the same assignment: the holder was able to take it
    report = json.loads(net.run("repair", lost.datasets["put"], "--json").stdout)
    assert {(s["index"], s["state"]) for s in report["shards"]} == {(0, "repaired"), (7, "repaired"),
                                                                  (14, "repaired")}
    assert net.fresh_chain().datasets.shard_holder_of(ds, 0) == target
    assert hashlib.sha256(_shard_file(net, target, ds, 0).read_bytes()).digest() == leaf


def test_an_upload_to_a_holder_the_shard_is_not_pending_at_is_refused(net: Net, lost: Lost) -> None:
    ds, holders = lost.ds("pending"), lost.holders
    chain = net.fresh_chain()
    chain.datasets.assign_shard(net.account("owner"), ds, 0, holders[5])
    shard0 = _shard_file(net, lost.failed, ds, 0).read_bytes()
    shard7 = _shard_file(net, lost.failed, ds, 7).read_bytes()
    leaves = _leaves(net, ds)
    # the right bytes of an assigned shard, to an Active holder outside its stripe that is not
    # the one assigned; a lost shard nobody assigned; a healthy shard's copy
    for holder, index, body in ((holders[6], 0, shard0), (holders[3], 7, shard7),
                                (holders[5], 1, _shard_file(net, holders[1], ds, 1).read_bytes())):
        reply = _put(net, holder, ds, index, body, leaves[index])
        assert reply.status_code == 409 and reply.json()["error"] == "not_assigned", (index, reply.text)
        assert _kept(net, holder, ds, index) == []
    assert _events(net, "ShardRepaired", ds) == []
    placed = [chain.datasets.shard_holder_of(ds, i) for i in (0, 1, 7)]
    assert placed == [lost.failed, holders[1], lost.failed]
    assert chain.datasets.pending_shard_holder(ds, 0) == holders[5]
    assert chain.datasets.pending_shard_holder(ds, 7) is None


def _hostile_holder(shards: dict[int, bytes], leaves: list[bytes], served: list[int]) -> Starlette:
    """Answers every repair read with the shard's length of wrong bytes, claiming its leaf."""
    async def shard(request: Request) -> Response:
        index = int(request.path_params["index"])
        served.append(index)
        real = shards[index]
        return Response(bytes([real[0] ^ 0xFF]) + real[1:], media_type="application/octet-stream",
                        headers={HEADER_SHARD_HASH: leaves[index].hex()})

    return Starlette(routes=[Route("/v1/repair/datasets/{ds}/shards/{index}", shard, methods=["GET"])])


@contextlib.contextmanager
def _hostile(net: Net, holders: list[str], ds: bytes) -> Iterator[dict[str, list[int]]]:
    """Kill each real holder and serve wrong shards on its port (its disk gives the lengths);
    yield holder -> indices it was asked for; afterwards the real holders run again."""
    leaves, served = _leaves(net, ds), {}
    with contextlib.ExitStack() as servers:
        servers.callback(net.heal)  # last, once every hostile server has let go of its port
        for address in holders:
            name = net.name_of(address)
            folder = _store(net, address) / "datasets" / ds.hex() / "shards"
            shards = {int(p.name): p.read_bytes() for p in folder.iterdir()}
            net.kill(name)
            served[address] = []
            servers.enter_context(serve(_hostile_holder(shards, leaves, served[address]),
                                        urlsplit(net.service(name)["endpoint"]).port))
        yield served


def test_a_holder_serving_a_wrong_shard_is_skipped_and_another_read(net: Net, lost: Lost) -> None:
    ds, holders = lost.ds("get-one"), lost.holders
    with _hostile(net, [holders[1]], ds) as served:
        proc = net.run("repair", lost.datasets["get-one"], "--json")
    report = json.loads(proc.stdout)
    assert served[holders[1]] == [1, 8]  # stripe 0's first read, stripe 1's third
    assert {(s["index"], s["state"]) for s in report["shards"]} == {(0, "repaired"), (7, "repaired")}
    size = len(_shard_file(net, holders[2], ds, 2).read_bytes())
    assert report["bytes_read"] == (2 * 3 + 2) * size  # one more read in each stripe
    leaves, chain = _leaves(net, ds), net.fresh_chain()
    for index in (0, 7):
        placed = chain.datasets.shard_holder_of(ds, index)
        assert placed not in (lost.failed, holders[1])
        assert hashlib.sha256(_shard_file(net, placed, ds, index).read_bytes()).digest() == leaves[index]


def test_fewer_than_k_good_shards_exits_7_naming_the_stripe_and_the_bad_holders(net: Net, lost: Lost) -> None:
    ds, holders = lost.ds("get-two"), lost.holders
    with _hostile(net, holders[1:3], ds) as served:
        proc = net.run("repair", lost.datasets["get-two"], "--json", check=REPAIR_FAILED)
    # each stripe is tried (a stripe that cannot be rebuilt does not stop the others): both
    # have their two hostile holders among the shards read
    assert served[holders[1]] == [1, 8] and served[holders[2]] == [2, 9]
    message = proc.stderr
    assert "stripe 0" in message and "only 2 of 3 good shards" in message, message
    assert holders[1] in message and holders[2] in message, message
    report = json.loads(proc.stdout)
    assert [(s["index"], s["state"]) for s in report["shards"]] == [(0, "refused"), (7, "refused")]
    assert [s["detail"].split(":")[0] for s in report["shards"]] == ["stripe 0", "stripe 1"]
    assert _events(net, "ShardAssigned", ds) == []
    assert all(net.fresh_chain().datasets.pending_shard_holder(ds, i) is None for i in range(5))
