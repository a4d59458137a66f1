"""Unlock tokens a holder must not answer: for another request, holder or dataset; replayed;
posted by an account without the KOS role; emitted by a contract that is not the deployment's.
In every case: no ``FragmentsDelivered``, and the holder logs why."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.deploy import deploy_all
from shardkey.chain.errors import TransactionReverted
from shardkey.crypto import seal, token_info
from tests.hostile.conftest import refusals
from tests.support.devchain import FUNDING


@pytest.fixture
def world(shared_world: Any) -> Any:
    return shared_world


@pytest.fixture
def two(world: Any) -> tuple[Any, Any]:
    """Two datasets with holder-1's bundle committed (so a wrong token is the only obstacle)."""
    return world.active_dataset(), world.active_dataset()


def post(world: Any, request_id: int, token: bytes) -> None:
    world.chain.retrievals.issue_tokens(world.dev.accounts["kos"], request_id, [world.me], [token])


def sealed(world: Any, built: Any, request_id: int, wrap_key: bytes | None = None,
           holder: int = 0) -> bytes:
    key = world.dev.holder_keys[f"holder-{holder + 1}"]
    address = world.holders[holder].address
    info = token_info(world.dev.client.chain_id, request_id, built.dataset_id, address)
    return seal(key.public_key_bytes(), wrap_key or built.wrap_keys[0], info)


def refused(world: Any, caplog: Any, request_id: int, why: str) -> None:
    world.settle()
    assert world.deliveries(request_id) == []
    assert not world.chain.retrievals.delivered(request_id, world.me)
    lines = refusals(caplog)
    assert lines and why in lines[-1], lines


def test_token_bound_to_another_request_is_refused(world, two, caplog) -> None:
    a, _ = two
    first, second = world.request(a).request_id, world.request(a).request_id
    post(world, second, sealed(world, a, first))  # right key and dataset, wrong request id
    refused(world, caplog, second, "cannot open")


def test_token_for_another_dataset_is_refused(world, two, caplog) -> None:
    a, b = two
    rid = world.request(a).request_id
    other = world.request(b).request_id
    post(world, rid, sealed(world, b, other))  # a valid token of dataset B's request
    refused(world, caplog, rid, "cannot open")
    rid2 = world.request(a).request_id
    post(world, rid2, sealed(world, a, rid2, wrap_key=b.wrap_keys[0]))  # B's wrap key, A's binding
    refused(world, caplog, rid2, "BundleUnwrapError")


def test_token_sealed_to_another_holder_is_refused(world, two, caplog) -> None:
    a, _ = two
    rid = world.request(a).request_id
    post(world, rid, sealed(world, a, rid, holder=1))  # sealed to holder-2's key, posted for holder-1
    refused(world, caplog, rid, "cannot open")


def test_replayed_token_is_refused(world, two, caplog) -> None:
    a, _ = two
    first = world.request(a).request_id
    post(world, first, sealed(world, a, first))
    world.settle()
    assert len(world.deliveries(first)) == 1
    token = bytes(world.chain.retrievals.contract.events.TokenIssued().get_logs(
        from_block=world.dev.deployment.start_block,
        argument_filters={"requestId": first})[0]["args"]["token"])
    second = world.request(a).request_id
    post(world, second, token)  # the exact bytes of the first token, replayed on a new request
    refused(world, caplog, second, "cannot open")
    # and the same token again on the first request: the contract refuses a second token
    with pytest.raises(TransactionReverted) as info:
        post(world, first, token)
    assert info.value.error == "RetrievalTokenAlreadyIssued"
    assert len(world.deliveries(first)) == 1


def test_only_the_kos_role_can_post_tokens(world, two) -> None:
    a, _ = two
    rid = world.request(a).request_id
    token = sealed(world, a, rid)
    for who in (world.owner, world.requester, world.holders[0], world.dev.accounts["admin"],
                world.dev.account("outsider")):
        with pytest.raises(TransactionReverted) as info:
            world.chain.retrievals.issue_tokens(who, rid, [world.me], [token])
        assert info.value.error == "AccessControlUnauthorizedAccount", who.address
    assert not world.chain.retrievals.token_issued(rid, world.me)
    world.settle()
    assert world.deliveries(rid) == []


def test_token_event_from_another_contract_is_ignored(world, two, monkeypatch) -> None:
    """A look-alike deployment (same code, an attacker as admin and KOS) emits TokenIssued
    for holder-1 with a request id that exists on the real coordinator: the agent only
    watches its deployment's addresses, so its handler never runs."""
    a, _ = two
    client = world.dev.client
    attacker = Account.create()
    client.w3.provider.make_request("anvil_setBalance", [attacker.address, FUNDING])
    fake = ShardKeyChain(deploy_all(client, attacker, [attacker.address]), client)
    for j, holder in enumerate(world.holders):  # the look-alike needs the holders registered
        fake.holders.register(holder, world.dev.holder_keys[f"holder-{j + 1}"].public_key_bytes(),
                              "http://127.0.0.1:9", f"region-{j}", 48_000_000, 2_000_000)
        fake.holders.activate(attacker, holder.address)
    built = world.build()
    fake.datasets.register(world.owner, built.salt, built.params, built.policy, built.shard_hashes,
                           built.sealed_wrap_keys, built.fragment_roots)
    fake_ds = fake.datasets.compute_dataset_id(world.owner.address, built.salt)
    for holder in world.holders:
        fake.datasets.confirm_custody(holder, fake_ds)
    real_rid = world.request(a).request_id  # approved and open on the real coordinator
    fake_rid = 0
    while fake_rid < real_rid:  # same request id on the look-alike
        fake.retrievals.request_retrieval(world.requester, fake_ds, b"\x01" * 32)
        fake_rid = int(fake.retrievals.contract.functions.requestCount().call())
    calls: list[int] = []
    real_deliver = world.agent.handlers.deliver
    monkeypatch.setattr(world.agent.handlers, "deliver",
                        lambda rid, token: calls.append(rid) or real_deliver(rid, token))
    fake.retrievals.issue_tokens(attacker, real_rid, [world.me], [sealed(world, a, real_rid)])
    world.settle()
    assert calls == []
    assert world.deliveries(real_rid) == []
    assert not world.chain.retrievals.token_issued(real_rid, world.me)
