"""Work anyone can make a holder do is bounded: a registration whose owner never uploads
is retried for ``pending_custody_blocks`` only, and deliveries per requester are rate
limited (on chain time) where the policy is open to anyone, the excess deferred."""

from __future__ import annotations

import json
import logging

from shardkey.policy.model import Policy


def test_a_registration_never_uploaded_is_dropped_after_the_block_limit(world, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="holder_agent.handlers")
    world.agent = world.make_agent(world.tmp / "holder-1", pending_custody_blocks=20)
    built = world.build()
    world.register(built)  # names this holder; the owner never uploads
    world.settle()
    handlers = world.agent.handlers
    assert built.dataset_id in handlers.pending
    assert built.dataset_id.hex() in json.loads(handlers.pending_path.read_text())

    world.dev.mine(10)  # within the limit: still waited for
    world.agent.poll()
    assert built.dataset_id in handlers.pending
    world.dev.mine(15)
    world.agent.poll()
    assert built.dataset_id not in handlers.pending
    assert built.dataset_id.hex() not in json.loads(handlers.pending_path.read_text())
    dropped = [r for r in caplog.records if r.getMessage().startswith("registration waited too long")]
    assert len(dropped) == 1 and dropped[0].fields["dataset"] == built.hex
    # a restart does not bring it back
    again = world.make_agent(world.tmp / "holder-1", pending_custody_blocks=20)
    assert built.dataset_id not in again.handlers.pending


def test_deliveries_over_the_rate_limit_are_deferred_not_dropped(world, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="holder_agent.handlers")
    agent = world.make_agent(world.tmp / "holder-1", delivery_rate_limit=2, delivery_rate_window=600)
    world.agent = agent
    built = world.active_dataset(Policy())  # open to anyone
    requests = [world.request(built) for _ in range(3)]
    for req in requests:
        world.unlock(req.request_id)
    world.settle()
    delivered = [world.chain.retrievals.delivered(r.request_id, world.me) for r in requests]
    assert delivered == [True, True, False]
    third = requests[2].request_id
    assert third in agent.handlers.deferred
    assert str(third) in json.loads(agent.handlers.deferred_path.read_text())
    deferred = [r for r in caplog.records if r.getMessage().startswith("delivery deferred")]
    assert [r.fields["request"] for r in deferred] == [third]
    # another requester has its own allowance
    other = world.request(built, world.dev.account("second-requester"))
    world.unlock(other.request_id)
    world.settle()
    assert world.chain.retrievals.delivered(other.request_id, world.me)
    # still inside the window (and after a restart): still deferred
    restarted = world.make_agent(world.tmp / "holder-1", delivery_rate_limit=2, delivery_rate_window=600)
    assert third in restarted.handlers.deferred
    world.agent = restarted
    world.advance(300)
    world.settle()
    assert not world.chain.retrievals.delivered(third, world.me)
    # once the requester's window has passed on chain time, it is delivered
    world.advance(400)
    world.settle()
    world.settle()
    assert world.chain.retrievals.delivered(third, world.me)
    assert restarted.handlers.deferred == {}
    assert json.loads(restarted.handlers.deferred_path.read_text()) == {}


def test_listed_requesters_are_not_rate_limited(world) -> None:
    agent = world.make_agent(world.tmp / "holder-1", delivery_rate_limit=1, delivery_rate_window=600)
    world.agent = agent
    built = world.active_dataset(Policy(requesters=(world.requester.address,)))
    requests = [world.request(built) for _ in range(3)]
    for req in requests:
        world.unlock(req.request_id)
    world.settle()
    assert all(world.chain.retrievals.delivered(r.request_id, world.me) for r in requests)
    assert agent.handlers.deferred == {}


def test_a_deferred_delivery_whose_request_closed_is_not_answered(world) -> None:
    agent = world.make_agent(world.tmp / "holder-1", delivery_rate_limit=1, delivery_rate_window=600)
    world.agent = agent
    built = world.active_dataset(Policy(approval_window=300))
    first, second = world.request(built), world.request(built)
    for req in (first, second):
        world.unlock(req.request_id)
    world.settle()
    assert world.chain.retrievals.delivered(first.request_id, world.me)
    assert second.request_id in agent.handlers.deferred
    world.advance(601)  # the window allows it now, but the request closed at 300 s
    world.settle()
    assert not world.chain.retrievals.is_open(second.request_id)
    assert not world.chain.retrievals.delivered(second.request_id, world.me)
    assert agent.handlers.deferred == {}


def test_the_deferred_list_is_bounded_and_a_token_past_it_is_dropped_logged(world, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="holder_agent.handlers")
    agent = world.make_agent(world.tmp / "holder-1", delivery_rate_limit=1, delivery_rate_window=600,
                             max_deferred_deliveries=1)
    world.agent = agent
    built = world.active_dataset(Policy())  # open to anyone
    requests = [world.request(built) for _ in range(3)]
    for req in requests:
        world.unlock(req.request_id)
    world.settle()
    first, second, third = (r.request_id for r in requests)
    assert world.chain.retrievals.delivered(first, world.me)
    assert list(agent.handlers.deferred) == [second]
    assert list(json.loads(agent.handlers.deferred_path.read_text())) == [str(second)]
    dropped = [r for r in caplog.records if r.getMessage() == "delivery dropped: deferred list full"]
    assert [(r.fields["request"], r.fields["max_deferred"]) for r in dropped] == [(third, 1)]
    world.advance(601)  # the deferred one is answered; the dropped one is not kept anywhere
    world.settle()
    world.settle()
    assert world.chain.retrievals.delivered(second, world.me)
    assert not world.chain.retrievals.delivered(third, world.me)
    assert agent.handlers.deferred == {}


def test_a_rate_limited_delivery_reads_the_policy_once(world, monkeypatch) -> None:
    agent = world.make_agent(world.tmp / "holder-1", delivery_rate_limit=2, delivery_rate_window=600)
    world.agent = agent
    built = world.active_dataset(Policy())
    req = world.request(built)
    world.unlock(req.request_id)
    reads: list[tuple[bytes, int]] = []
    datasets = agent.handlers.chain.datasets
    real = datasets.policy

    def counted(dataset_id: bytes, version: int) -> Policy:
        reads.append((dataset_id, version))
        return real(dataset_id, version)

    monkeypatch.setattr(datasets, "policy", counted)
    world.settle()
    assert world.chain.retrievals.delivered(req.request_id, world.me)
    assert reads == [(built.dataset_id, 1)]  # the release check's read serves the rate limit too
