"""The KOS issues each holder's token exactly once, survives restarts and crashes."""

from __future__ import annotations

import json
import stat
import time

from kos.orchestrator import Outcome
from shardkey.chain.model import RequestStatus


def test_tokens_issued_once_and_open_to_each_holders_wrap_key(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    kos = world.replica()

    report = kos.poll()

    assert report.outcomes == {request_id: Outcome.ISSUED}
    world.assert_tokens_open(request_id, dataset)
    assert world.chain.retrievals.request(request_id).tokens_issued == 3
    heartbeat = kos.state_dir / "heartbeat.json"
    assert stat.S_IMODE(heartbeat.stat().st_mode) == 0o600
    beat = json.loads(heartbeat.read_text())
    # Kept pending until the token transaction is `confirmations` (1) blocks deep, so a
    # reorg that drops it makes the KOS issue again.
    assert beat["pending"] == 1 and beat["ok"] and beat["block"] >= report.block
    while world.chain.client.block_number() <= report.block:
        time.sleep(0.05)
    again = kos.poll()
    assert again.outcomes == {request_id: Outcome.DROPPED}
    assert json.loads(heartbeat.read_text())["pending"] == 0
    assert kos.poll().outcomes == {}
    restarted = world.replica()  # same state dir: cursor and pending set from disk
    assert restarted.poll().outcomes == {}
    fresh = world.replica(state="kos-fresh")  # no cursor: sees the approval again
    assert fresh.poll().outcomes == {request_id: Outcome.DROPPED}
    assert len(world.token_events(request_id)) == 3


def test_pending_request_survives_a_crash_before_it_is_settled(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    crashed = world.replica()
    crashed.watcher.poll_once()  # the approval is recorded, then the process dies
    assert request_id in crashed.pending

    restarted = world.replica()
    report = restarted.poll()

    assert report.events == 0  # the cursor had moved past the approval
    assert report.outcomes == {request_id: Outcome.ISSUED}
    world.assert_tokens_open(request_id, dataset)


def test_request_without_approval_gets_nothing(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    kos = world.replica()
    assert kos.poll().outcomes == {}
    assert world.chain.retrievals.request(request_id).status == RequestStatus.PENDING
    assert world.token_events(request_id) == []
