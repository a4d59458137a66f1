"""Releases a holder must not answer from: share envelopes made for another request, dataset or
holder, or replayed from another request; tokens posted by anyone but the KosCommittee; a
token emitted by a contract that is not the deployment's. In every case: no
``FragmentsDelivered``, and the holder logs why (a rejected share names its verdict)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from shardkey.chain.bindings import KOS_ROLE, ShardKeyChain
from shardkey.chain.deploy import deploy_all
from shardkey.chain.errors import TransactionReverted
from shardkey.crypto.committee_envelope import committee_marker
from tests.support.devchain import FUNDING


@pytest.fixture
def world(shared_world: Any) -> Any:
    return shared_world


@pytest.fixture
def two(world: Any) -> tuple[Any, Any]:
    """Two datasets with holder-1's bundle committed (so a wrong share is the only obstacle)."""
    return world.active_dataset(), world.active_dataset()


def honest(world: Any, member: int, request_id: int) -> list[bytes]:
    """Member ``member``'s honest sealed envelopes for ``request_id`` (the KOS's own code), not posted."""
    service = world.kos[member]
    req = world.chain.retrievals.request(request_id)
    fragments = service.orchestrator.deal(req.dataset_id, req.fragment_epoch)
    deal = service.member.deal(req.dataset_id, req.fragment_epoch)
    return service.member.envelopes(req, fragments, deal,
                                    lambda holder: world.chain.holders.holder(holder).hpke_public_key)


def post(world: Any, request_id: int, envelopes: list[bytes], members: tuple[int, ...] = (0, 1)) -> None:
    """Members ``members`` (the threshold) each post ``envelopes`` as their release of the request."""
    committee = world.chain.committee
    for i in members:
        sent = committee.submit_release(world.members[i].account, request_id, envelopes)
        world.dev.client.wait(sent)
    assert world.chain.retrievals.token_issued(request_id, world.me)  # the threshold issued the markers


def refused(world: Any, caplog: Any, request_id: int, verdict: str) -> None:
    world.settle()
    assert world.deliveries(request_id) == []
    assert not world.chain.retrievals.delivered(request_id, world.me)
    rejected = [r for r in caplog.records if r.getMessage().startswith("committee share rejected")
                and r.fields["request"] == request_id]
    assert rejected and {r.fields["verdict"] for r in rejected} == {verdict}, rejected


def test_envelopes_made_for_another_request_are_refused(world, two, caplog) -> None:
    a, _ = two
    first, second = world.request(a).request_id, world.request(a).request_id
    post(world, second, honest(world, 0, first))  # right member, holder and dataset; wrong request
    refused(world, caplog, second, "unreadable")


def test_envelopes_for_another_dataset_are_refused(world, two, caplog) -> None:
    a, b = two
    rid, other = world.request(a).request_id, world.request(b).request_id
    post(world, rid, honest(world, 0, other))  # a valid release of dataset B's request
    refused(world, caplog, rid, "unreadable")


def test_an_envelope_sealed_to_another_holder_is_refused(world, two, caplog) -> None:
    a, _ = two
    rid = world.request(a).request_id
    envelopes = honest(world, 0, rid)
    envelopes[0], envelopes[1] = envelopes[1], envelopes[0]  # holder-2's envelope in holder-1's slot
    post(world, rid, envelopes)
    refused(world, caplog, rid, "unreadable")


def test_a_release_replayed_from_another_request_is_refused(world, two, caplog) -> None:
    a, _ = two
    first = world.request(a).request_id
    world.unlock(first)
    world.settle()
    assert len(world.deliveries(first)) == 1
    seen = world.chain.committee.releases(first, world.dev.deployment.start_block)
    second = world.request(a).request_id
    post(world, second, list(seen[0].sealed_envelopes))  # the exact bytes on chain, replayed
    refused(world, caplog, second, "unreadable")
    # and the contract refuses a member's second release of the first request
    with pytest.raises(TransactionReverted) as info:
        world.release(first, 0)
    assert info.value.error == "ReleaseAlreadyDone"
    assert len(world.deliveries(first)) == 1


def test_only_the_committee_can_post_tokens(world, two) -> None:
    a, _ = two
    rid = world.request(a).request_id
    for who in (world.owner, world.requester, world.holders[0], world.dev.accounts["admin"],
                world.members[0].account, world.dev.account("outsider")):
        with pytest.raises(TransactionReverted) as info:
            world.chain.retrievals.issue_tokens(who, rid, [world.me], [committee_marker(1)])
        assert info.value.error == "AccessControlUnauthorizedAccount", who.address
    with pytest.raises(TransactionReverted) as info:  # and only members release
        world.chain.committee.client.wait(world.chain.committee.submit_release(
            world.dev.account("outsider"), rid, [b"\x01" * 81] * len(world.holders)))
    assert info.value.error == "CommitteeNotMember"
    assert not world.chain.retrievals.token_issued(rid, world.me)
    world.settle()
    assert world.deliveries(rid) == []


def test_token_event_from_another_contract_is_ignored(world, two, monkeypatch) -> None:
    """A look-alike deployment (same code, an attacker as admin holding KOS_ROLE) emits
    TokenIssued for holder-1 with a request id that exists on the real coordinator: the agent
    only watches its deployment's addresses, so its handler never runs."""
    a, _ = two
    client = world.dev.client
    attacker = Account.create()
    client.w3.provider.make_request("anvil_setBalance", [attacker.address, FUNDING])
    fake = ShardKeyChain(deploy_all(client, attacker), client)
    client.send(fake.retrievals.contract.functions.grantRole(KOS_ROLE, attacker.address), attacker)
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
    monkeypatch.setattr(world.agent.handlers, "deliver", lambda rid: calls.append(rid) or real_deliver(rid))
    fake.retrievals.issue_tokens(attacker, real_rid, [world.me], [committee_marker(1)])
    world.settle()
    assert calls == []
    assert world.deliveries(real_rid) == []
    assert not world.chain.retrievals.token_issued(real_rid, world.me)
