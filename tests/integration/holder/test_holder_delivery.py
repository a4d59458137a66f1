"""Deliveries once the committee's threshold is reached (``World.unlock``: two members release,
the marker tokens are issued): delivery the requester can open and verify; refusals;
idempotency."""

from __future__ import annotations

import hashlib
import logging
import os

from holder_agent.service import Agent
from shardkey.chain import eip712
from shardkey.chain.watcher import EventWatcher
from shardkey.crypto import data_shard_indices, delivery_info, holder_fragments_root, unpack_bundle
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.policy import Circle
from shardkey.policy.model import Policy
from tests.integration.holder.conftest import OpenRequest


def _open_delivery(world, built, req) -> bytes:
    events = world.deliveries(req.request_id)
    assert len(events) == 1
    assert events[0]["args"]["holder"] == world.me
    info = delivery_info(world.dev.client.chain_id, req.request_id, built.dataset_id, world.me)
    return req.ephemeral.open(bytes(events[0]["args"]["sealedFragments"]), info)


def test_token_gives_a_delivery_that_verifies(world) -> None:
    built = world.active_dataset()
    req = world.request(built)
    world.unlock(req.request_id)
    world.settle()
    assert world.chain.retrievals.delivered(req.request_id, world.me)
    bundle = unpack_bundle(_open_delivery(world, built, req), dataset_id=built.dataset_id, x=1)
    params = built.params  # shard format v2: fragments of the data shards' keys only
    assert [i for i, _ in bundle.entries] == data_shard_indices(params.shard_count, params.k, params.p)
    assert holder_fragments_root(built.dataset_id, 1, bundle.entries) == built.fragment_roots[0]


def test_a_dataset_whose_fragments_are_elsewhere_is_not_answered(world) -> None:
    """Holder-1 holds shards only: the committee's tokens go to holders 2 and 3, the releases
    carry no envelope for it; it neither delivers nor waits for shares."""
    built = world.build(fragment_holders=world.holders[1:])
    world.upload(built, bundle=False)
    world.register(built)
    world.settle()
    assert world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    req = world.request(built)
    for member in (0, 1):
        world.release(req.request_id, member)
    assert not world.chain.retrievals.token_issued(req.request_id, world.me)
    assert world.chain.retrievals.token_issued(req.request_id, world.holders[1].address)
    world.settle()
    assert world.deliveries(req.request_id) == []
    assert world.agent.handlers.committee.waiting == {}


def _refusals(caplog) -> list[str]:
    return [str(getattr(r, "fields", {}).get("reason", getattr(r, "fields", {}).get("error")))
            for r in caplog.records if r.getMessage().startswith("token not answered")]


def test_a_dealt_wrap_key_that_does_not_open_the_bundle_is_not_answered(world, caplog) -> None:
    """The owner dealt holder-2's wrap key in holder-1's slot: the shares verify against the
    deal's commitments, the key they combine to does not open holder-1's bundle."""
    built = world.build()
    built.deal = world.dev.slots(built.dataset_id, [built.wrap_keys[1], *built.wrap_keys[1:]])[1]
    world.upload(built)
    world.register(built)
    world.settle()
    req = world.request(built)
    world.unlock(req.request_id)
    world.settle()
    assert world.deliveries(req.request_id) == []
    assert _refusals(caplog) == ["BundleUnwrapError"]


def test_off_chain_policy_check_refuses_after_window(world, caplog) -> None:
    not_after = world.now() + 30
    built = world.active_dataset(Policy(not_after=not_after))
    req = world.request(built)
    world.advance(120)  # still inside the approval window, past the policy's not_after
    assert world.chain.retrievals.is_open(req.request_id)
    world.unlock(req.request_id)
    world.settle()
    assert world.deliveries(req.request_id) == []
    assert len(_refusals(caplog)) == 1 and "TOO_LATE" in _refusals(caplog)[0]


def test_attested_request_is_delivered_after_the_attestation_aged(world) -> None:
    attestor = world.dev.account("attestor")
    policy = Policy(attestors=(attestor.address,), max_attestation_age=60,
                    circles=(Circle(48_000_000, 2_000_000, 50_000),))
    built = world.active_dataset(policy)
    issued_at = world.now()
    nonce = os.urandom(32)
    fields = (world.requester.address, 48_001_000, 2_001_000, 100, issued_at, nonce)
    signature = eip712.sign(world.chain.retrievals.domain, "LocationAttestation",
                            eip712.attestation_message(*fields), attestor)
    ephemeral = HpkePrivateKey.generate(os.urandom)
    world.chain.retrievals.request_retrieval(world.requester, built.dataset_id,
                                             ephemeral.public_key_bytes(), fields, attestor.address,
                                             signature)
    request_id = int(world.chain.retrievals.contract.functions.requestCount().call())
    assert world.chain.retrievals.is_open(request_id)
    world.advance(300)  # older than max_attestation_age now: judged at request time
    world.unlock(request_id)
    world.settle()
    req = OpenRequest(request_id, world.requester, ephemeral)
    bundle = unpack_bundle(_open_delivery(world, built, req), dataset_id=built.dataset_id, x=1)
    assert holder_fragments_root(built.dataset_id, 1, bundle.entries) == built.fragment_roots[0]


def test_handler_twice_and_restart_from_cursor_deliver_once(world, tmp_path) -> None:
    built = world.active_dataset()
    req = world.request(built)
    world.unlock(req.request_id)
    world.dev.mine()
    assert world.agent.handlers.deliver(req.request_id) is True
    assert world.agent.handlers.deliver(req.request_id) is False
    world.settle()  # the watcher's own run of the handler: already delivered
    assert len(world.deliveries(req.request_id)) == 1

    # a restart from the cursor handles nothing again; a lost cursor replays every event
    agent: Agent = world.agent
    restarted = EventWatcher(world.dev.client, world.chain.contracts, agent.watcher.cursor_path,
                             start_block=world.dev.deployment.start_block, confirmations=1)
    agent.handlers.attach(restarted)
    assert restarted.poll_once() == 0
    agent.watcher.cursor_path.unlink()
    fresh = world.make_agent(agent.store.root)
    assert fresh.watcher.poll_once() > 0
    assert len(world.deliveries(req.request_id)) == 1
    assert world.chain.datasets.custody_confirmed(built.dataset_id, world.me)
    assert hashlib.sha256(agent.store.read_bundle(built.dataset_id) or b"").digest() == \
        hashlib.sha256(built.wrapped_bundles[0]).digest()


def test_tokens_handled_in_one_poll_are_all_sent_before_any_is_waited_for(world, caplog) -> None:
    caplog.set_level(logging.INFO, logger="holder_agent.handlers")
    built = world.active_dataset()
    requests = [world.request(built) for _ in range(3)]
    for req in requests:
        world.unlock(req.request_id)
    world.dev.mine()
    handlers = world.agent.handlers
    for req in requests:
        assert handlers.deliver(req.request_id) is True
    assert sorted(handlers.in_flight) == [r.request_id for r in requests]  # sent, not waited for
    handlers.wait_deliveries()
    assert handlers.in_flight == {}
    delivered = [r for r in caplog.records if r.getMessage() == "fragments delivered"]
    assert sorted(getattr(r, "fields", {})["request"] for r in delivered) == [r.request_id for r in requests]
    assert all(len(world.deliveries(r.request_id)) == 1 for r in requests)


def test_the_watcher_waits_for_deliveries_before_it_saves_its_cursor(world) -> None:
    built = world.active_dataset()
    req = world.request(built)
    world.unlock(req.request_id)
    world.settle()  # handles TokenIssued, sends the delivery, then saves the cursor
    assert world.agent.handlers.in_flight == {}
    assert world.chain.retrievals.delivered(req.request_id, world.me)


def test_an_approved_request_for_a_bundle_here_opens_the_fast_polling_window(world) -> None:
    """The token follows an approval within a block or two: a holder of the dataset's bundle
    polls fast from the approval until the token (its delivery is not a poll interval late);
    an approval for a dataset whose fragments are elsewhere opens nothing."""
    held = world.active_dataset()
    elsewhere = world.build(fragment_holders=world.holders[1:])
    world.upload(elsewhere, bundle=False)
    world.register(elsewhere)
    world.settle()
    expected = world.agent.store.expected
    assert not expected.pending()
    world.request(elsewhere)
    world.settle()
    assert not expected.pending()
    req = world.request(held)
    world.settle()
    assert expected.pending()
    world.unlock(req.request_id)
    world.settle()
    assert world.chain.retrievals.delivered(req.request_id, world.me)
    assert not expected.pending()
