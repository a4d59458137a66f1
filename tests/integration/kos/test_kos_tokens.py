"""A member releases its shares of each request exactly once, and survives restarts and
crashes; the threshold's release issues each holder's marker token."""

from __future__ import annotations

import json
import stat
import time

from kos.orchestrator import Outcome
from shardkey.chain.model import RequestStatus


def test_each_member_releases_once_and_the_threshold_serves_every_holder(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    member = world.member(0)

    report = member.poll()

    assert report.outcomes == {request_id: Outcome.ISSUED}
    assert world.released_by(request_id) == [world.members[0].address]
    heartbeat = member.state_dir / "heartbeat.json"
    assert stat.S_IMODE(heartbeat.stat().st_mode) == 0o600
    beat = json.loads(heartbeat.read_text())
    # Kept pending until the release is `confirmations` blocks deep (0 here: seen at the next
    # poll's head), so a reorg that drops it makes the member release again.
    assert beat["pending"] == 1 and beat["ok"] and beat["block"] >= report.block
    assert (beat["mode"], beat["releases"]) == ("member", 1)
    while world.chain.client.block_number() <= report.block:
        time.sleep(0.05)
    again = member.poll()
    assert again.outcomes == {request_id: Outcome.DROPPED}
    assert json.loads(heartbeat.read_text())["pending"] == 0
    assert member.poll().outcomes == {}
    restarted = world.member(0)  # same state dir: cursor and pending set from disk
    assert restarted.poll().outcomes == {}
    fresh = world.member(0, state="member-1-fresh")  # no cursor: sees the approval again
    assert fresh.poll().outcomes == {request_id: Outcome.DROPPED}
    assert world.committee.release_counts(request_id) == (1, 0)
    assert world.token_events(request_id) == []  # one of two

    assert world.member(1).poll().outcomes == {request_id: Outcome.ISSUED}
    world.assert_served(request_id, dataset)
    assert world.chain.retrievals.request(request_id).tokens_issued == 3


def test_pending_request_survives_a_crash_before_it_is_settled(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    crashed = world.member(0)
    crashed.watcher.poll_once()  # the approval is recorded, then the process dies
    assert request_id in crashed.pending

    restarted = world.member(0)
    report = restarted.poll()

    assert report.events == 0  # the cursor had moved past the approval
    assert report.outcomes == {request_id: Outcome.ISSUED}
    world.serve(request_id, members=(2,))
    world.assert_served(request_id, dataset)


def test_request_without_approval_gets_nothing(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    member = world.member(0)
    assert member.poll().outcomes == {}
    assert world.chain.retrievals.request(request_id).status == RequestStatus.PENDING
    assert world.committee.release_counts(request_id) == (0, 0)
