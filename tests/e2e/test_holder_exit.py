"""A holder leaves, on a real devnet (anvil, contracts, KOS and holder processes, HTTP):
``holder exit`` -> its agent refuses uploads -> still serves a fetch -> its fragments are
re-dealt and its shards moved (placements moved with the bindings, as a repairer would) ->
the agent calls completeExit by itself -> Retired, and its data is deleted."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from shardkey.chain.chaintime import ChainTime
from shardkey.chain.model import HolderStatus
from shardkey.cli.context import Env
from shardkey.client.holder_http import HolderClient, HolderRequestError
from tests.support.waiting import wait_until

POLICY = "requesters: [requester, owner]\nthreshold: 2\n"
DEVNET_HOLDERS = 6  # a stripe of k + p = 5 shards always leaves one holder free for a move
DEVNET_REPAIRER = False  # shards are moved by hand here (by the service: test_repair_service.py)


def test_exiting_holder_serves_then_retires_when_it_holds_nothing(devnet, tmp_path: Path) -> None:
    env = Env(home=devnet.home, network_file=None, passphrase_file=None, max_fee_gwei=None)
    chain = env.chain
    data = os.urandom(300_000)
    source, policy = tmp_path / "input.bin", tmp_path / "policy.yaml"
    source.write_bytes(data)
    policy.write_text(POLICY)
    dataset = devnet.json("store", str(source), "--policy", str(policy), "--shard-size", "65536",
                       "--threshold", "2", "--fragment-holders", "3")["dataset"]
    ds = bytes.fromhex(dataset.removeprefix("0x"))
    params = chain.datasets.dataset(ds).params
    by_address = {h["address"]: h["name"] for h in devnet.devnet["holders"]}
    leaver = by_address[chain.datasets.fragment_set(ds).holders[0]]
    entry = devnet.holder(leaver)
    store_dir = Path(entry["data_dir"]) / "store" / "datasets" / ds.hex()
    assert store_dir.is_dir()

    out = devnet.run("holder", "exit", "--config", entry["config"]).stdout
    assert "exiting" in out and "completeExit" in out
    assert chain.holders.holder(entry["address"]).status == HolderStatus.EXITING
    status = json.loads(devnet.run("holder", "status", "--config", entry["config"], "--json").stdout)
    assert status["status"] == "exiting"
    assert status["exit"]["shards_held"] == chain.datasets.shards_held(ds, entry["address"]) > 0
    assert status["exit"]["fragment_sets"] == [dataset] and not status["exit"]["holds_nothing"]

    # new data refused with a code naming the status (once the agent has seen it)
    owner = env.account("owner")
    client = HolderClient(entry["address"], entry["endpoint"], owner, ChainTime.of(chain.client))

    def refused() -> bool:
        try:
            client.put_shard(b"\x07" * 32, 0, b"x" * 64, hashlib.sha256(b"x" * 64).digest())
        except HolderRequestError as exc:
            return exc.status == 403 and "this holder is exiting" in str(exc)
        return False

    wait_until(refused, 30, "the exiting holder refusing uploads")
    client.close()

    # it still serves: a fetch needs its shards and its delivery like any other
    request = devnet.json("request", dataset)
    restored = tmp_path / "restored.bin"
    devnet.run("fetch", str(request["request"]), "-o", str(restored))
    assert hashlib.sha256(restored.read_bytes()).digest() == hashlib.sha256(data).digest()

    # its fragments re-dealt away (the new set never includes an exiting holder) ...
    summary = devnet.json("redeal", dataset)
    assert entry["address"] not in [env.resolve(h) for h in summary["fragment_holders"]]
    # ... and its shards moved to a holder free in each stripe
    m = params.k + params.p
    for index in range(params.shard_count):
        if chain.datasets.shard_holder_of(ds, index) != entry["address"]:
            continue
        stripe = {chain.datasets.shard_holder_of(ds, i)
                  for i in range(index // m * m, min(index // m * m + m, params.shard_count))}
        target = next(a for a in by_address if a not in stripe and a != entry["address"])
        chain.datasets.assign_shard(owner, ds, index, target)
        chain.datasets.confirm_shard_placement(env.account(by_address[target]), ds, index)
    assert chain.datasets.shards_held(ds, entry["address"]) == 0

    wait_until(lambda: chain.holders.holder(entry["address"]).status == HolderStatus.RETIRED, 60,
               "the agent calling completeExit")
    wait_until(lambda: not store_dir.exists(), 30, "the retired holder deleting its data")
    # the chain shows Retired once completeExit is mined, a moment before the agent's own
    # send returns and it logs the exit
    wait_until(lambda: "exit complete" in Path(entry["log"]).read_text(), 30, "the agent logging its exit")
