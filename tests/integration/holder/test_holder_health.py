"""The holder's /v1/health turns 503 when its watcher lags or is stuck; /metrics; capacity.

Real agent (``assemble_agent``) on anvil, its Starlette app over ``TestClient``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from holder_agent.api import create_app
from holder_agent.service import Agent

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

MIB = 1024**2


def _client(agent: Agent) -> TestClient:
    return TestClient(create_app(agent.api))


def test_health_turns_503_when_the_cursor_falls_behind_and_recovers(world, tmp_path: Path) -> None:
    agent = world.make_agent(tmp_path / "lag", health_max_lag_blocks=3)
    http = _client(agent)
    agent.poll()
    ok = http.get("/v1/health")
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    world.dev.mine(6)  # the head moves on, the agent does not poll
    behind = http.get("/v1/health")
    assert behind.status_code == 503
    body = behind.json()
    assert body["status"] == "unhealthy" and body["lag_blocks"] > 3
    assert "blocks behind the chain head (limit 3)" in body["reason"]
    agent.poll()
    assert http.get("/v1/health").status_code == 200


def test_health_turns_503_when_no_poll_succeeds_for_too_long(world, tmp_path: Path) -> None:
    agent = world.make_agent(tmp_path / "stuck", health_max_poll_age=0.3)
    http = _client(agent)
    agent.poll()
    assert http.get("/v1/health").status_code == 200
    time.sleep(0.5)  # the watcher thread is stuck (here: nobody polls)
    stuck = http.get("/v1/health")
    assert stuck.status_code == 503
    assert stuck.json()["reason"].startswith("last successful chain poll")
    agent.poll()
    assert http.get("/v1/health").status_code == 200


def test_metrics_count_uploads_events_and_bytes_stored(world, tmp_path: Path) -> None:
    built = world.build()
    world.upload(built)
    world.register(built)
    world.settle()
    text = world.http.get("/metrics").text
    uploads = len(built.my_shards(world.me)) + 1  # shards and the bundle
    assert f"shardkey_holder_uploads_total {uploads}.0" in text
    assert 'shardkey_holder_events_handled_total{event="DatasetRegistered"} 1.0' in text
    stored = sum(len(built.shards[i]) for i in built.my_shards(world.me)) + len(built.wrapped_bundles[0])
    assert f"shardkey_holder_bytes_stored {float(stored)}" in text
    assert f"shardkey_holder_bytes_received_total {float(stored)}" in text
    assert "shardkey_holder_shards_served_total 0.0" in text
    assert "shardkey_holder_watcher_lag_blocks" in text
    assert world.me not in text and world.owner.address not in text  # no addresses as labels
    health = world.http.get("/v1/health").json()
    assert health["storage"]["used"] == stored and health["storage"]["allocated"] is None


def test_capacity_bytes_refuses_an_upload_past_the_allocation_with_507(world, tmp_path: Path) -> None:
    built = world.build(length=4000, shard_size=1024)
    agent = world.make_agent(tmp_path / "small", capacity_bytes=1500, reserve_free_bytes=0,
                             staging_min_charge=0)
    http = _client(agent)
    index = built.my_shards(world.me)[0]
    path = f"/v1/datasets/{built.hex}/shards/{index}"
    first = world.put(world.owner, path, built.shards[index], client=http)
    assert first.status_code == 201
    other = built.my_shards(world.me)[1] if len(built.my_shards(world.me)) > 1 else None
    body = built.shards[other] if other is not None else built.shards[index] + b"x"
    second_path = f"/v1/datasets/{built.hex}/shards/{other if other is not None else index + 100}"
    refused = world.put(world.owner, second_path, body, client=http)
    assert refused.status_code == 507
    assert refused.json()["error"] == "capacity_exceeded"
    assert "capacity_bytes" in refused.json()["detail"]
    health = http.get("/v1/health").json()["storage"]
    assert health == {"used": len(built.shards[index]), "allocated": 1500,
                      "free": 1500 - len(built.shards[index])}
    assert not list(agent.store.incoming.iterdir())  # nothing half-written


def test_reserve_free_bytes_refuses_an_upload_into_the_reserve_with_507(world, tmp_path: Path) -> None:
    built = world.build()
    agent = world.make_agent(tmp_path / "reserve", reserve_free_bytes=1 << 62)  # more than any disk
    index = built.my_shards(world.me)[0]
    refused = world.put(world.owner, f"/v1/datasets/{built.hex}/shards/{index}", built.shards[index],
                        client=_client(agent))
    assert refused.status_code == 507
    assert refused.json()["error"] == "capacity_exceeded"
    assert "reserve_free_bytes" in refused.json()["detail"]
    assert agent.store.staged_usage() == 0


def test_metrics_count_shards_and_bytes_served(world) -> None:
    """Served shards are counted (their per-shard log line is DEBUG only)."""
    built = world.active_dataset()
    req = world.request(built)
    mine = built.my_shards(world.me)
    for index in mine:
        path = f"/v1/datasets/{built.hex}/shards/{index}?request={req.request_id}"
        assert world.get(req.requester, path).status_code == 200
    text = world.http.get("/metrics").text
    assert f"shardkey_holder_shards_served_total {float(len(mine))}" in text
    assert f"shardkey_holder_bytes_served_total {float(sum(len(built.shards[i]) for i in mine))}" in text
