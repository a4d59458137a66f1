"""Uploads cost nothing until signed, and staging is bounded: the signature (over the
declared body hash and length) is checked before a body byte is read, the verified
account is charged the declared size, a global cap bounds all accounts together, every
staged file costs a minimum, and a body other than declared leaves nothing behind."""

from __future__ import annotations

import os
import socket
import warnings
from urllib.parse import urlsplit

import httpx

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from holder_agent.api import create_app
from shardkey.httpauth import HEADER_ACCOUNT
from tests.support.http_server import serve

DS = "0x" + "ab" * 32


def _small(world, **limits):
    agent = world.make_agent(world.tmp / "small", **limits)
    return agent, TestClient(create_app(agent.api))


def _start_put(base: str, path: str, headers: dict[str, str], length: int, sent: bytes) -> socket.socket:
    """Send a PUT declaring ``length`` body bytes but only ``sent`` of them; keep it open."""
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=5.0)
    lines = [f"PUT {path} HTTP/1.1", f"Host: {url.netloc}", f"Content-Length: {length}",
             *[f"{k}: {v}" for k, v in headers.items()], "", ""]
    sock.sendall("\r\n".join(lines).encode() + sent)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """What the server answered within the socket's timeout (b"": still waiting for the body)."""
    with sock:
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


def test_forged_upload_reads_no_body_and_charges_no_one(world) -> None:
    agent, _ = _small(world, quota_bytes=10_000)
    attacker = world.dev.account("attacker")
    path = f"/v1/datasets/{DS}/shards/0"
    with serve(create_app(agent.api)) as base:
        # signed by the attacker, claiming the owner's account; the body is never finished
        body = os.urandom(9000)
        forged = dict(world.headers(attacker, "PUT", path, body), **{HEADER_ACCOUNT: world.owner.address})
        stalled = _start_put(base, path, forged, len(body), body[:8000])
        unsigned = _start_put(base, path, {}, len(body), b"")
        # meanwhile the owner's whole quota is still there
        own = os.urandom(9000)
        reply = httpx.put(base + f"/v1/datasets/{DS}/shards/1", content=own,
                          headers=world.headers(world.owner, "PUT", f"/v1/datasets/{DS}/shards/1", own))
        assert reply.status_code == 201, reply.text
        # both were refused without waiting for their bodies
        for sock in (stalled, unsigned):
            answer = _answer(sock)
            assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert agent.store.staged_usage(world.owner.address) == 9000
        assert agent.store.staged_usage() == 9000
        assert list(agent.store.incoming.iterdir()) == []


def test_global_staging_cap_refuses_once_full_across_accounts(world) -> None:
    agent, client = _small(world, quota_bytes=10_000, staging_total_bytes=5000, staging_min_charge=0)
    accounts = [world.dev.account(f"sybil-{i}") for i in range(6)]
    codes = []
    for account in accounts:
        reply = world.put(account, f"/v1/datasets/{DS}/shards/0", os.urandom(1000), client)
        codes.append((reply.status_code, reply.json().get("error", reply.json().get("status"))))
    assert codes[:5] == [(201, "staged")] * 5
    assert codes[5] == (507, "staging_full")
    assert agent.store.staged_usage() == 5000
    assert list(agent.store.incoming.iterdir()) == []
    # the cap is recounted from disk after a restart
    again = world.make_agent(world.tmp / "small", quota_bytes=10_000, staging_total_bytes=5000,
                             staging_min_charge=0)
    assert again.store.staged_usage() == 5000


def test_empty_uploads_are_charged_the_minimum(world) -> None:
    agent, client = _small(world, quota_bytes=3 * 4096)
    for i in range(3):
        reply = world.put(world.owner, f"/v1/datasets/{DS}/shards/{i}", b"", client)
        assert reply.status_code == 201, reply.text
    assert agent.store.staged_usage(world.owner.address) == 3 * 4096
    full = world.put(world.owner, f"/v1/datasets/{DS}/shards/3", b"", client)
    assert full.status_code == 507 and full.json()["error"] == "quota_exceeded"
    assert len(list((agent.store.staged_dir(world.owner.address, bytes.fromhex(DS[2:]))
                     / "shards").iterdir())) == 3


def test_body_other_than_declared_leaves_nothing(world) -> None:
    agent, client = _small(world)
    path = f"/v1/datasets/{DS}/shards/0"
    signed_body = os.urandom(3000)
    headers = world.headers(world.owner, "PUT", path, signed_body)
    # same length, another hash
    reply = client.put(path, content=os.urandom(3000), headers=headers)
    assert reply.status_code == 400 and reply.json()["error"] == "body_mismatch"
    # shorter and longer than declared (chunked: no Content-Length to refuse up front)
    for body in (signed_body[:2000], signed_body + b"x"):
        headers = world.headers(world.owner, "PUT", path, signed_body)
        reply = client.put(path, content=iter([body[:1000], body[1000:]]), headers=headers)
        assert reply.status_code == 400 and reply.json()["error"] == "body_mismatch", reply.text
    # a Content-Length other than the signed length is refused before the body
    headers = dict(world.headers(world.owner, "PUT", path, signed_body))
    reply = client.put(path, content=signed_body + b"x", headers=headers)
    assert reply.status_code == 400 and reply.json()["error"] == "length_mismatch"
    assert list(agent.store.staging.iterdir()) == [] and list(agent.store.incoming.iterdir()) == []
    assert agent.store.staged_usage() == 0
    # the declared body itself is staged
    reply = client.put(path, content=signed_body, headers=world.headers(world.owner, "PUT", path,
                                                                        signed_body))
    assert reply.status_code == 201 and reply.json()["size"] == 3000
