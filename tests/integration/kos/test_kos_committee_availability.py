"""What replaced KOS replicas and leader turns: members act on their own, ``m - t_k`` of them
down still serves, fewer than ``t_k`` up serves nothing yet, and a member that was down
catches up from its cursor when it comes back (the contract counts one act per member)."""

from __future__ import annotations

from kos.orchestrator import Outcome
from shardkey.chain.model import RequestStatus


def test_every_member_acts_at_once_without_turns_and_each_releases_once(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    members = [world.member(i) for i in range(3)]

    assert [m.poll().outcomes for m in members] == [{request_id: Outcome.ISSUED}] * 3  # no WAITING
    assert world.committee.release_counts(request_id) == (3, 0)
    senders = {world.dev.client.w3.eth.get_transaction(e["transactionHash"])["from"]
               for e in world.token_events(request_id)}
    assert senders == {world.members[1].address}  # the t_k-th release issued the tokens
    world.assert_served(request_id, dataset)
    assert [m.poll().outcomes for m in members] == [{request_id: Outcome.DROPPED}] * 3
    assert all(len(m.pending) == 0 for m in members)


def test_m_minus_t_members_down_still_serves(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)  # member-2 is down throughout

    world.serve(request_id, members=(0, 2))
    world.assert_served(request_id, dataset)
    assert world.committee.release_state(request_id, world.members[1].address) == 0


def test_below_the_threshold_nothing_is_served_until_a_restarted_member_catches_up(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    down = world.member(1)
    assert down.poll().outcomes == {}  # it was up before the request was approved, then went down
    world.approve(request_id)

    assert world.member(0).poll().outcomes == {request_id: Outcome.ISSUED}
    world.dev.mine(5)  # time passes; one release of two: nothing for the holders yet
    assert world.token_events(request_id) == []
    assert world.chain.retrievals.request(request_id).status == RequestStatus.APPROVED

    back = world.member(1)  # same state dir: its cursor is from before the approval
    report = back.poll()
    assert report.events >= 1 and report.outcomes == {request_id: Outcome.ISSUED}
    world.assert_served(request_id, dataset)
