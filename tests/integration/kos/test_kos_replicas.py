"""Two replicas: one token per holder, the leader acts first, the other takes over."""

from __future__ import annotations

from kos.leader import leader_of
from kos.orchestrator import Outcome


def _pair(world, takeover_after: int = 30):
    addresses = [world.kos_account("kos").address, world.kos_account("kos-2").address]
    replicas = {name: world.replica(name, replicas=addresses, takeover_after=takeover_after)
                for name in ("kos", "kos-2")}
    return addresses, replicas


def _roles(world, request_id: int, addresses, replicas):
    leader = leader_of(addresses, request_id)
    by_address = {r.account.address: r for r in replicas.values()}
    follower = next(a for a in addresses if a != leader)
    return by_address[leader], by_address[follower]


def test_leader_issues_and_the_follower_issues_nothing(world) -> None:
    addresses, replicas = _pair(world)
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    leader, follower = _roles(world, request_id, addresses, replicas)

    assert follower.poll().outcomes == {request_id: Outcome.WAITING}
    assert leader.poll().outcomes == {request_id: Outcome.ISSUED}
    assert follower.poll().outcomes == {request_id: Outcome.DROPPED}

    world.assert_tokens_open(request_id, dataset)
    senders = {world.dev.client.w3.eth.get_transaction(e["transactionHash"])["from"]
               for e in world.token_events(request_id)}
    assert senders == {leader.account.address}
    assert len(follower.pending) == 0


def test_follower_takes_over_after_the_timeout_in_chain_time(world) -> None:
    addresses, replicas = _pair(world, takeover_after=30)
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    _leader, follower = _roles(world, request_id, addresses, replicas)  # the leader is down

    assert follower.poll().outcomes == {request_id: Outcome.WAITING}
    world.advance(10)
    assert follower.poll().outcomes == {request_id: Outcome.WAITING}
    world.advance(25)
    assert follower.poll().outcomes == {request_id: Outcome.ISSUED}
    world.assert_tokens_open(request_id, dataset)


def test_race_with_another_replica_issues_only_the_missing_tokens(world, monkeypatch) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    kos = world.replica()
    other = world.kos_account("kos-2")
    first = dataset.holders[0].address
    world.chain.retrievals.issue_tokens(other, request_id, [first], [b"\x01" * 81])
    # a stale read: the replica believes no token was issued yet
    monkeypatch.setattr(kos.orchestrator, "_missing",
                        lambda rid, holders, none_issued: list(holders))

    assert kos.poll().outcomes == {request_id: Outcome.ISSUED}

    events = world.token_events(request_id)
    assert sorted(e["args"]["holder"] for e in events) == sorted(h.address for h in dataset.holders)
    assert world.chain.retrievals.request(request_id).tokens_issued == 3
