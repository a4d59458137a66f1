"""A member's health rule (the service core's, as the holder's) and its metrics, in process."""

from __future__ import annotations

import time

from kos.service import KosService
from shardkey.service.health import WatchHealth


def _member(world, health: WatchHealth) -> KosService:
    return world.member(0, state="member-health", health=health)


def test_health_turns_unhealthy_when_the_cursor_falls_behind(world) -> None:
    service = _member(world, WatchHealth(max_poll_age=60, max_lag_blocks=3))
    service.poll()
    healthy, body = service.health_status()
    assert healthy and body["status"] == "ok" and body["reason"] is None
    world.dev.mine(6)
    healthy, body = service.health_status()
    assert not healthy and body["status"] == "unhealthy"
    assert "blocks behind the chain head (limit 3)" in str(body["reason"])
    service.poll()
    assert service.health_status()[0]


def test_health_turns_unhealthy_when_no_poll_succeeds_for_too_long(world) -> None:
    service = _member(world, WatchHealth(max_poll_age=0.3, max_lag_blocks=50))
    service.poll()
    assert service.health_status()[0]
    time.sleep(0.5)
    healthy, body = service.health_status()
    assert not healthy and str(body["reason"]).startswith("last successful chain poll")


def test_metrics_count_released_shares_and_events(world) -> None:
    service = _member(world, WatchHealth())
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    deadline = time.monotonic() + 30
    while world.released_by(request_id) == []:
        assert time.monotonic() < deadline, "shares never released"
        service.poll()
        world.dev.mine()
    text = service.metrics.render().decode()  # one envelope per holder
    assert "shardkey_kos_envelopes_released_total 3.0" in text
    assert 'shardkey_kos_events_handled_total{event="RetrievalApproved"} 1.0' in text
    assert "shardkey_kos_polls_total" in text and "shardkey_kos_watcher_lag_blocks" in text
    assert service.account.address not in text
