"""Uploads into staging, custody on registration, receipts, staging GC."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from holder_agent import api, storage
from holder_agent import receipts as receipts_module
from holder_agent.expectations import Expectations, registration_of, token_of
from holder_agent.receipts import ShardDigests
from shardkey.audit.verify import verify_dataset
from shardkey.chain import eip712
from shardkey.chain.model import DatasetStatus, RequestStatus
from shardkey.crypto import MerkleTree
from tests.support.waiting import wait_until


def test_upload_then_registration_confirms_custody(world) -> None:
    built = world.build()
    world.upload(built)
    mine = built.my_shards(world.me)
    assert mine == [0, 3]
    staged = world.agent.store.staged_dir(world.owner.address, built.dataset_id)
    assert sorted(p.name for p in (staged / "shards").iterdir()) == ["0", "3"]
    # identical re-upload is idempotent
    again = world.put(world.owner, f"/v1/datasets/{built.hex}/shards/0", built.shards[0])
    assert again.status_code == 201 and again.json()["status"] == "staged"

    world.register(built)
    world.settle()
    assert world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    assert world.chain.datasets.dataset(built.dataset_id).status == DatasetStatus.ACTIVE
    assert not staged.exists()
    assert world.agent.store.committed_shards(built.dataset_id) == mine
    assert world.agent.store.read_bundle(built.dataset_id) == built.wrapped_bundles[0]

    # same content after custody: fine; different content: conflict
    same = world.put(world.owner, f"/v1/datasets/{built.hex}/shards/3", built.shards[3])
    assert same.status_code == 201 and same.json()["status"] == "committed"
    other = world.put(world.owner, f"/v1/datasets/{built.hex}/shards/3", b"x" * 100)
    assert other.status_code == 409 and other.json()["error"] == "conflict"
    assert not world.agent.store.staged_dir(world.owner.address, built.dataset_id).exists()

    receipts = world.http.get(f"/v1/datasets/{built.hex}/receipts").json()
    assert receipts["bundle"] is True and receipts["holder"] == world.me
    assert [r["index"] for r in receipts["shards"]] == mine
    domain = world.chain.retrievals.domain
    for r in receipts["shards"]:
        assert bytes.fromhex(r["sha256"]) == built.shard_hashes[r["index"]]
        message = eip712.receipt_message(built.dataset_id, r["index"], bytes.fromhex(r["sha256"]))
        assert eip712.recover(domain, "ShardReceipt", message, bytes.fromhex(r["signature"][2:])) == world.me

    # a second poll (and a handler re-run on the same event) changes nothing
    world.settle()
    world.agent.handlers.try_custody(world.chain.datasets.registration(built.dataset_id, 0))


def test_missing_shard_blocks_custody_until_uploaded(world) -> None:
    built = world.build()
    world.upload(built, skip={3})
    world.register(built)
    world.settle()
    assert not world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    assert built.dataset_id in world.agent.handlers.pending
    # a wrong shard 3 does not help either
    world.put(world.owner, f"/v1/datasets/{built.hex}/shards/3", built.shards[0])
    time.sleep(0.01)
    world.settle()
    assert not world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    # the right one, uploaded late, is picked up by the retry
    world.put(world.owner, f"/v1/datasets/{built.hex}/shards/3", built.shards[3])
    world.settle()
    assert world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    assert world.agent.handlers.pending == {}


def test_uploads_by_another_account_are_not_claimed(world) -> None:
    built = world.build()
    stranger = world.dev.account("stranger")
    for i in built.my_shards(world.me):
        world.put(stranger, f"/v1/datasets/{built.hex}/shards/{i}", built.shards[i])
    world.put(stranger, f"/v1/datasets/{built.hex}/bundle", built.wrapped_bundles[0])
    world.register(built)
    world.settle()
    assert not world.chain.datasets.custody_confirmed(built.dataset_id, world.me)


def test_unclaimed_staging_is_collected_after_ttl(world) -> None:
    built = world.build()
    world.upload(built)
    staged = world.agent.store.staged_dir(world.owner.address, built.dataset_id)
    world.agent.gc()
    assert staged.exists()
    old = time.time() - world.agent.settings.staging_ttl - 10
    for path in [staged, *staged.rglob("*")]:
        os.utime(path, (old, old))
    world.agent.gc()
    assert not staged.exists()
    assert not (world.agent.store.staging / world.owner.address).exists()


def test_health_and_openapi(world) -> None:
    starting = world.http.get("/v1/health")  # no chain poll yet: not healthy
    assert starting.status_code == 503 and starting.json()["reason"] == "starting: no poll yet"
    world.agent.poll()
    health = world.http.get("/v1/health").json()
    assert {k: health[k] for k in ("status", "reason", "address", "chain_id")} == {
        "status": "ok", "reason": None, "address": world.me, "chain_id": world.dev.client.chain_id}
    assert set(health["storage"]) == {"used", "allocated", "free"}
    doc = world.http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert set(paths["/v1/datasets/{dataset_id}/shards/{index}"]) == {"get", "put"}
    assert "/v1/datasets/{dataset_id}/receipts" in paths


def test_agent_polls_fast_only_while_something_is_expected(world, tmp_path) -> None:
    agent = world.make_agent(tmp_path / "slow", poll_interval=1.0)
    now = [100.0]
    agent.store.expected = Expectations(window=5.0, clock=lambda: now[0])
    assert agent.poll_interval() == 1.0  # nothing expected: the configured interval
    agent.store.expected.expect(registration_of(b"\x01" * 32))  # as a bundle upload does
    assert agent.poll_interval() == 0.05
    agent.store.expected.met(registration_of(b"\x01" * 32))  # as the registration's handler does
    assert agent.poll_interval() == 1.0
    agent.store.expected.expect(token_of(7))
    now[0] += 5.0  # never met: the window has passed
    assert agent.poll_interval() == 1.0


@pytest.mark.parametrize("deal_later", [False, True], ids=["deal-with-registration", "deal-later"])
def test_a_staged_bundle_keeps_the_agent_polling_fast_until_custody(world, deal_later: bool) -> None:
    """Shards alone announce nothing (more uploads are to come); the bundle announces the
    registration, and custody ends the fast polling at once, not a window later (a store's
    holders polled 20 times a second for 5 s, most of it after custody). A committee deal
    registered in a later transaction keeps it going: ended at the registration, the deal was
    seen a poll interval late and every store's activation waited for it."""
    built = world.build()
    world.upload(built, bundle=False)
    assert not world.agent.store.expected.pending()
    world.upload(built)
    assert world.agent.store.expected.pending()
    world.register(built, deal=not deal_later)
    world.settle()
    if deal_later:
        assert not world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
        assert world.agent.store.expected.pending()
        world.register_deal(built)
        world.settle()
    assert world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    assert not world.agent.store.expected.pending()


def test_a_staged_bundle_wakes_an_agent_waiting_out_a_long_poll_interval(world) -> None:
    """The agent waits out its poll interval (here a minute) only while nothing is expected: a
    bundle staged meanwhile cuts the wait short, so custody follows the registration at once;
    and stopping cuts it short too."""
    agent = world.agent
    agent.settings = agent.settings.model_copy(update={"poll_interval": 60.0})
    built = world.build()
    stop = threading.Event()
    watching = threading.Thread(target=agent.watch, args=(stop,), daemon=True)
    watching.start()
    try:
        wait_until(lambda: agent.api.health._last_ok is not None, 10, "the first poll")
        assert not agent.store.expected.pending()  # so the next poll is a minute away
        world.upload(built)
        world.register(built)
        wait_until(lambda: world.chain.datasets.custody_confirmed(built.dataset_id, world.me), 20,
                   "custody confirmed by the watching agent")
    finally:
        agent.halt(stop)
        watching.join(timeout=10)
    assert not watching.is_alive()


def test_registration_whose_root_disagrees_with_its_shard_hashes_is_refused(world, caplog) -> None:
    """An owner registers a Merkle root over other hashes than the published ones, to "prove"
    later that this holder's true shard is wrong. The holder never confirms custody, so the
    dataset never becomes Active and no request can open (contracts test the report side)."""
    built = world.build()
    bogus = MerkleTree.from_digests([hashlib.sha256(b"bogus %d" % i).digest()
                                     for i in range(built.params.shard_count)])
    built.params = replace(built.params, merkle_root=bogus.root)
    world.upload(built)
    world.register(built)
    with caplog.at_level(logging.ERROR, logger="holder_agent.handlers"):
        world.settle()
    assert not world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    assert built.dataset_id not in world.agent.handlers.pending  # refused for good, not retried
    assert world.agent.store.committed_shards(built.dataset_id) == []
    assert any("Merkle root" in r.getMessage() and "custody refused" in r.getMessage()
               for r in caplog.records), caplog.text
    assert world.chain.datasets.dataset(built.dataset_id).status == DatasetStatus.PENDING
    req = world.request(built)
    assert world.chain.retrievals.request(req.request_id).status == RequestStatus.DENIED
    # a re-run of the handler changes nothing
    world.agent.handlers.try_custody(world.chain.datasets.registration(built.dataset_id, 0))
    assert not world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    # an auditor sees it too, before asking any holder anything
    assert not verify_dataset(world.chain, built.dataset_id).root_ok
    assert verify_dataset(world.chain, world.active_dataset().dataset_id).root_ok


def test_receipts_reread_each_shard_at_most_once_per_stamp_and_period(world, monkeypatch) -> None:
    """The public /receipts is bounded: however many callers, each committed file is read
    once per (inode, size, mtime) and per re-hash period; downloads share the digests."""
    built = world.active_dataset()
    mine = built.my_shards(world.me)
    now = [1000.0]
    world.agent.api.digests = ShardDigests(rehash_after=600.0, clock=lambda: now[0])
    reads: Counter[str] = Counter()
    real_hash = storage.hash_handle

    def counting(handle):
        reads[Path(handle.name).name] += 1
        return real_hash(handle)

    for module in (api, receipts_module):  # wherever the serving code looks the hasher up
        monkeypatch.setattr(module, "hash_handle", counting, raising=False)
    url = f"/v1/datasets/{built.hex}/receipts"
    with ThreadPoolExecutor(max_workers=8) as pool:  # concurrent cold misses: one read per file
        answers = list(pool.map(lambda _: api._receipts(world.agent.api, built.dataset_id), range(16)))
    assert all(a == answers[0] for a in answers)
    for _ in range(10):
        assert world.http.get(url).json() == answers[0]
    req = world.request(built)
    for i in mine:
        assert world.get(req.requester, f"/v1/datasets/{built.hex}/shards/{i}?request={req.request_id}"
                         ).status_code == 200
    assert reads == {str(i): 1 for i in mine}

    # a new file (new stamp) is read once and its own hash signed
    path = world.agent.store.committed_path(built.dataset_id, mine[0])
    path.write_bytes(b"replaced")
    for _ in range(3):
        shards = {s["index"]: s for s in world.http.get(url).json()["shards"]}
    assert shards[mine[0]]["sha256"] == hashlib.sha256(b"replaced").hexdigest()
    message = eip712.receipt_message(built.dataset_id, mine[0], hashlib.sha256(b"replaced").digest())
    signature = bytes.fromhex(shards[mine[0]]["signature"][2:])
    assert eip712.recover(world.chain.retrievals.domain, "ShardReceipt", message, signature) == world.me
    assert reads[str(mine[0])] == 2 and reads[str(mine[1])] == 1

    # the periodic re-hash: past the period every file is read once more
    now[0] += 601
    for _ in range(3):
        world.http.get(url)
    assert reads[str(mine[0])] == 3 and reads[str(mine[1])] == 2


def test_a_registration_whose_slots_are_not_the_committee_marker_is_refused_for_good(world, caplog) -> None:
    """The committee is the network's only KOS: slots it does not name (a single-key KOS's
    sealed wrap keys, say) could never be unlocked, so custody is refused, not waited for."""
    caplog.set_level(logging.INFO, logger="holder_agent.handlers")
    built = world.build()
    built.sealed_wrap_keys = [os.urandom(120) for _ in world.holders]
    world.upload(built)
    world.register(built)  # with a committee deal all the same
    world.settle()
    assert not world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    assert built.dataset_id not in world.agent.handlers.pending
    refused = [r for r in caplog.records if r.getMessage() == "custody refused for good"]
    assert len(refused) == 1 and "not a dataset this network serves" in refused[0].fields["reason"]
