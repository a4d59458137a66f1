"""The holder's repair endpoints (holder_agent/repair.py) against the real contracts: who
may read a shard for repair, a lost copy released on chain, a rebuilt shard refused unless
it is its on-chain leaf (nothing kept), kept and confirmed once, idempotent on a repeat."""

from __future__ import annotations

import hashlib
import os
import warnings

import pytest

from holder_agent.api import create_app
from holder_agent.service import assemble_agent
from holder_agent.settings import HolderSettings
from shardkey.crypto import HpkePrivateKey
from shardkey.httpauth import sign_request

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _path(built, index: int) -> str:
    return f"/v1/repair/datasets/{built.hex}/shards/{index}"


@pytest.fixture
def repair_world(world):
    """One stripe on holders 1-3 (the agent is holder-1) and an empty Active holder-4 agent."""
    chain, dev = world.chain, world.dev
    newcomer = dev.account("holder-4")
    key = HpkePrivateKey.generate(os.urandom)
    dev.holder_keys["holder-4"] = key
    chain.holders.register(newcomer, key.public_key_bytes(), "http://127.0.0.1:9", "region-3",
                           48_000_003, 2_000_003)
    chain.holders.activate(dev.accounts["admin"], newcomer.address)
    settings = HolderSettings(deployment=world.tmp / "deployment.json", account_key=world.tmp / "unused.key",
                              hpke_keystore=world.tmp / "unused.hpke", data_dir=world.tmp / "holder-4",
                              listen_port=1, confirmations=1, poll_interval=0.05)
    agent = assemble_agent(settings, chain, newcomer, key)
    built = world.build(length=2000)
    world.upload(built)
    world.register(built)
    world.settle()
    assert built.params.stripes == 1 and chain.datasets.custody_confirmed(built.dataset_id, world.me)
    return world, built, newcomer, agent, TestClient(create_app(agent.api))


def test_repair_read_is_for_the_owner_and_repairers_only(repair_world) -> None:
    world, built, _, _, _ = repair_world
    chain = world.chain
    path = _path(built, 0)
    reply = world.get(world.owner, path)
    assert reply.status_code == 200, reply.text
    assert reply.content == built.shards[0]
    assert reply.headers["X-ShardKey-Shard-Sha256"] == built.shard_hashes[0].hex()

    stranger = world.dev.account("stranger")
    reply = world.get(stranger, path)
    assert reply.status_code == 403 and reply.json()["error"] == "not_repairer"
    repairer = world.dev.account("repairer")
    chain.holders.grant_repairer_role(world.dev.accounts["admin"], repairer.address)
    assert world.get(repairer, path).status_code == 200

    reply = world.get(world.owner, _path(built, 1))  # placed at holder-2
    assert reply.status_code == 404 and reply.json()["error"] == "not_held"


def test_a_lost_copy_is_answered_410_and_released_on_chain(repair_world) -> None:
    world, built, _, _, _ = repair_world
    world.agent.api.store.committed_path(built.dataset_id, 0).unlink()
    reply = world.get(world.owner, _path(built, 0))
    assert reply.status_code == 410 and reply.json()["error"] == "shard_lost"
    assert world.chain.datasets.shard_released(built.dataset_id, 0)


def test_a_rebuilt_shard_is_kept_only_if_it_is_its_leaf(repair_world) -> None:
    world, built, newcomer, agent, http = repair_world
    chain, ds = world.chain, built.dataset_id
    chain.holders.mark_failed(world.dev.accounts["admin"], world.holders[1].address)  # holder-2: shard 1
    path = _path(built, 1)

    def put(body: bytes, declared: bytes | None = None):
        headers = sign_request(world.owner, newcomer.address, "PUT", path, declared or body, world.now())
        return http.put(path, content=body, headers=headers)

    good = built.shards[1]
    reply = put(good)  # not assigned yet
    assert reply.status_code == 409 and reply.json()["error"] == "not_assigned"
    chain.datasets.assign_shard(world.owner, ds, 1, newcomer.address)

    wrong = bytes(b ^ 1 for b in good)
    reply = put(wrong)  # a hostile repairer's bytes: its hash is not the leaf
    assert reply.status_code == 422 and reply.json()["error"] == "leaf_mismatch"
    reply = put(wrong, declared=good)  # declared the leaf, sent other bytes
    assert reply.status_code == 400, reply.text
    store = agent.api.store
    assert store.committed_shards(ds) == []
    assert not any(p.is_file() for p in store.root.rglob("*") if "shards" in p.parts)
    assert chain.datasets.pending_shard_holder(ds, 1) == newcomer.address

    reply = put(good)
    assert reply.status_code == 201 and reply.json()["status"] == "confirmed", reply.text
    assert chain.datasets.shard_holder_of(ds, 1) == newcomer.address
    assert hashlib.sha256(store.committed_path(ds, 1).read_bytes()).digest() == built.shard_hashes[1]
    reply = put(good)  # a repeat (a repairer restarted) changes nothing
    assert reply.status_code == 201 and reply.json()["status"] == "confirmed"
    start = world.dev.deployment.start_block
    assert len(chain.datasets.contract.get_logs("ShardRepaired", start, datasetId=ds)) == 1

    headers = sign_request(world.owner, newcomer.address, "GET", path, b"", world.now())
    served = http.get(path, headers=headers)
    assert served.status_code == 200 and served.content == good
