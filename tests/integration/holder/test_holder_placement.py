"""The placement map after a repair (shardkey.chain.placement): a shard moved away by a
confirmed repair is no longer served by its old holder, and the map every caller reads
agrees with the contract's ``shardHolderOf`` for every shard."""

from __future__ import annotations

import os

from shardkey.crypto import HpkePrivateKey
from tests.support.waiting import wait_until


def _path(built, index: int, request_id: int) -> str:
    return f"/v1/datasets/{built.hex}/shards/{index}?request={request_id}"


def test_a_repaired_shard_is_no_longer_served_by_its_old_holder(world) -> None:
    chain = world.chain
    built = world.active_dataset()
    req = world.request(built)
    assert world.get(req.requester, _path(built, 0, req.request_id)).status_code == 200

    newcomer = world.dev.account("holder-4")
    chain.holders.register(newcomer, HpkePrivateKey.generate(os.urandom).public_key_bytes(),
                           "http://127.0.0.1:9", "region-3", 48_000_003, 2_000_003)
    chain.holders.activate(world.dev.accounts["admin"], newcomer.address)
    registration = chain.datasets.registration(built.dataset_id, world.dev.deployment.start_block)
    before = chain.datasets.placement(registration)
    assert before.holder(0) == world.me

    chain.datasets.release_shard(world.holders[0], built.dataset_id, 0)
    chain.datasets.assign_shard(world.owner, built.dataset_id, 0, newcomer.address)
    assert world.get(req.requester, _path(built, 0, req.request_id)).status_code == 200  # pending only
    chain.datasets.confirm_shard_placement(newcomer, built.dataset_id, 0)
    world.dev.mine()

    after = chain.datasets.placement(registration)
    assert after.holder(0) == newcomer.address
    assert after.holders == [chain.datasets.shard_holder_of(built.dataset_id, i)
                             for i in range(built.params.shard_count)]
    before.advance(chain.datasets.contract)  # the incremental path gives the same map
    assert before.holders == after.holders and 0 in before.repaired
    assert after.indices_of(world.me) == [i for i in built.my_shards(world.me) if i != 0]

    # The old holder may serve it while its cached head predates the move (HEAD_MAX_AGE), then not.
    def refused():  # the reply once it is not a 200
        reply = world.get(req.requester, _path(built, 0, req.request_id))
        return reply if reply.status_code != 200 else None

    reply = wait_until(refused, 30, "the moved shard to be refused")
    assert reply.status_code == 404 and reply.json()["error"] == "not_held"
    still = built.my_shards(world.me)[1]
    assert world.get(req.requester, _path(built, still, req.request_id)).status_code == 200
