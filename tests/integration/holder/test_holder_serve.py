"""Serving shards to approved requesters, with receipts; every refusal path."""

from __future__ import annotations

import asyncio
import hashlib
import json
from urllib.parse import unquote

from holder_agent.context import HEAD_MAX_AGE
from shardkey.chain import eip712
from shardkey.chain.chaintime import ChainTime, head_reader
from shardkey.crypto import verify_shard
from shardkey.httpauth import HEADER_RECEIPT, HEADER_SHARD_HASH
from shardkey.policy.model import ApprovalGroup, Policy
from tests.support.waiting import wait_until


def _path(built, index: int, request_id: int) -> str:
    return f"/v1/datasets/{built.hex}/shards/{index}?request={request_id}"


def _served_once_open(world, requester, path: str) -> bool:
    """One download; True once it is served (a refusal as not open is the cached head, not
    yet past HEAD_MAX_AGE); any other answer fails."""
    reply = world.get(requester, path)
    if reply.status_code == 403 and reply.json()["error"] == "request_not_open":
        return False
    assert reply.status_code == 200, reply.text
    return True


def _refused_not_open(world, requester, path: str) -> bool:
    """One download; True once it is refused as not open (a 200 is the cached head, not yet
    past HEAD_MAX_AGE); any other answer fails."""
    reply = world.get(requester, path)
    if reply.status_code == 200:
        return False
    assert reply.status_code == 403 and reply.json()["error"] == "request_not_open", reply.text
    return True


def test_serves_shard_with_verifiable_receipt(world) -> None:
    built = world.active_dataset()
    req = world.request(built)
    for index in built.my_shards(world.me):
        reply = world.get(req.requester, _path(built, index, req.request_id))
        assert reply.status_code == 200, reply.text
        body = reply.content
        assert body == built.shards[index]
        digest = hashlib.sha256(body).digest()
        assert reply.headers[HEADER_SHARD_HASH] == digest.hex()
        assert verify_shard(index, digest, built.tree.proof(index), built.params.merkle_root)
        receipt = bytes.fromhex(reply.headers[HEADER_RECEIPT].removeprefix("0x"))
        domain = world.chain.retrievals.domain
        message = eip712.served_message(req.request_id, built.dataset_id, index, digest)
        assert eip712.recover(domain, "ShardServed", message, receipt) == world.me
        # the contract computes the same digest
        on_chain = world.chain.retrievals.contract.functions.hashShardServed(
            req.request_id, built.dataset_id, index, digest).call()
        assert bytes(on_chain) == eip712.digest(domain, "ShardServed", message)
        # not a custody receipt, and not a receipt for another request
        custody = eip712.receipt_message(built.dataset_id, index, digest)
        assert eip712.recover(domain, "ShardReceipt", custody, receipt) != world.me
        other = eip712.served_message(req.request_id + 1, built.dataset_id, index, digest)
        assert eip712.recover(domain, "ShardServed", other, receipt) != world.me


def test_served_receipt_names_the_request_it_was_served_under(world) -> None:
    """The same shard served under two requests carries two receipts, each for its own request."""
    built = world.active_dataset()
    first, second = world.request(built), world.request(built)
    index = built.my_shards(world.me)[0]
    domain = world.chain.retrievals.domain
    for req in (first, second):
        reply = world.get(req.requester, _path(built, index, req.request_id))
        assert reply.status_code == 200, reply.text
        receipt = bytes.fromhex(reply.headers[HEADER_RECEIPT].removeprefix("0x"))
        for rid in (first.request_id, second.request_id):
            message = eip712.served_message(rid, built.dataset_id, index, built.shard_hashes[index])
            assert (eip712.recover(domain, "ShardServed", message, receipt) == world.me) == \
                (rid == req.request_id)


def test_refuses_bad_signatures(world) -> None:
    built = world.active_dataset()
    req = world.request(built)
    path = _path(built, 0, req.request_id)

    unsigned = world.http.get(path)
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "unauthorized"

    headers = world.headers(req.requester, "GET", path)
    forged = dict(headers, **{"X-ShardKey-Account": world.owner.address})
    assert world.http.get(path, headers=forged).status_code == 401

    other_path = world.headers(req.requester, "GET", _path(built, 3, req.request_id))
    assert world.http.get(path, headers=other_path).status_code == 401

    assert world.http.get(path, headers=headers).status_code == 200
    replay = world.http.get(path, headers=headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]

    stale = world.headers(req.requester, "GET", path, timestamp=world.now() - 3600)
    assert world.http.get(path, headers=stale).status_code == 401
    future = world.headers(req.requester, "GET", path, timestamp=world.now() + 3600)
    assert world.http.get(path, headers=future).status_code == 401

    bad_sig = dict(world.headers(req.requester, "GET", path), **{"X-ShardKey-Signature": "0x1234"})
    assert world.http.get(path, headers=bad_sig).status_code == 401


def test_refuses_wrong_requester_dataset_and_placement(world) -> None:
    built = world.active_dataset()
    req = world.request(built)
    outsider = world.dev.account("outsider")
    reply = world.get(outsider, _path(built, 0, req.request_id))
    assert reply.status_code == 403 and reply.json()["error"] == "not_requester"

    other = world.active_dataset()
    reply = world.get(req.requester, f"/v1/datasets/{other.hex}/shards/0?request={req.request_id}")
    assert reply.status_code == 403 and reply.json()["error"] == "wrong_dataset"

    reply = world.get(req.requester, _path(built, 1, req.request_id))  # placed at holder-2
    assert reply.status_code == 404 and reply.json()["error"] == "not_held"
    reply = world.get(req.requester, _path(built, 99, req.request_id))
    assert reply.status_code == 404 and reply.json()["error"] == "unknown_shard"
    reply = world.get(req.requester, _path(built, 0, 10_000))
    assert reply.status_code == 404 and reply.json()["error"] == "unknown_request"


def test_refuses_pending_completed_and_revoked(world) -> None:
    approver = world.dev.account("approver")
    policy = Policy(groups=(ApprovalGroup("ops", (approver.address,), 1),))
    built = world.active_dataset(policy)
    pending = world.request(built)
    reply = world.get(pending.requester, _path(built, 0, pending.request_id))
    assert reply.status_code == 403 and reply.json()["error"] == "request_not_open"

    world.chain.retrievals.approve(approver, world.chain.retrievals.approval_subject(pending.request_id))
    # served once the holder's head is past the approval: the refusal above may be the state
    # of its cached head for up to HEAD_MAX_AGE (a stale refusal, which clients retry)
    wait_until(lambda: _served_once_open(world, pending.requester, _path(built, 0, pending.request_id)),
               30, "the approved request to be served")

    world.chain.retrievals.complete(pending.requester, pending.request_id)
    # refused once the holder's head is past the completion (HEAD_MAX_AGE after the block)
    wait_until(lambda: _refused_not_open(world, pending.requester, _path(built, 0, pending.request_id)),
               30, "the completed request to be refused")

    second = world.request(built)
    world.chain.retrievals.approve(approver, world.chain.retrievals.approval_subject(second.request_id))
    world.chain.datasets.revoke(world.owner, built.dataset_id)
    reply = world.get(second.requester, _path(built, 0, second.request_id))
    assert reply.status_code == 403
    world.settle()  # the revocation event is handled; data is kept
    assert world.agent.store.committed_shards(built.dataset_id) == built.my_shards(world.me)


def test_a_closed_request_is_refused_once_the_head_bound_has_passed(world) -> None:
    """Downloads read the chain head at most every HEAD_MAX_AGE seconds (no eth_blockNumber per
    shard) and keep a request's state only for that block: a request completed on chain may
    still be served while the holder's head is older than the completion, and is refused as
    soon as the head is re-read. The holder's monotonic clock is the test's here."""
    host = [0.0]
    world.agent.api.clock = ChainTime(head_reader(world.chain.client), HEAD_MAX_AGE, lambda: host[0])
    built = world.active_dataset()
    req = world.request(built)
    index = built.my_shards(world.me)[0]
    path = _path(built, index, req.request_id)
    assert world.get(req.requester, path).status_code == 200
    world.chain.retrievals.complete(req.requester, req.request_id)
    assert not world.chain.retrievals.is_open(req.request_id)
    host[0] += HEAD_MAX_AGE / 2  # within the bound: the head (and the request's state) as read
    assert world.get(req.requester, path).status_code == 200
    host[0] += HEAD_MAX_AGE  # past it: the head is re-read, the completion seen
    reply = world.get(req.requester, path)
    assert reply.status_code == 403 and reply.json()["error"] == "request_not_open"


def test_refuses_expired_request(world) -> None:
    built = world.active_dataset(Policy(approval_window=60))
    req = world.request(built)
    world.advance(120)
    reply = world.get(req.requester, _path(built, 0, req.request_id))
    assert reply.status_code == 403 and reply.json()["error"] == "request_not_open"


GARBAGE = [
    ("..", "0"), ("0x" + "ab" * 31, "0"), ("0x" + "zz" * 32, "0"), ("0X" + "ab" * 32, "0"),
    ("ab" * 32 + "%2F..", "0"), ("%2E%2E", "0"), ("\u0661" * 64, "0"), ("0x" + "ab" * 32 + "%0A", "0"),
    ("ab" * 32, "-1"), ("ab" * 32, "4294967296"), ("ab" * 32, "1e3"), ("ab" * 32, "\u0661"),
    ("ab" * 32, "%2E%2E"), ("ab" * 32, "0x10"), ("ab" * 32, " 1"), ("ab" * 32, "1" * 11),
]


def test_garbage_ids_are_400_before_disk(world) -> None:
    before = sorted(str(p) for p in world.agent.store.root.rglob("*"))
    for dataset_id, index in GARBAGE:
        path = f"/v1/datasets/{dataset_id}/shards/{index}"
        replies = [world.put(world.owner, path, b"data"), world.get(world.requester, path + "?request=1")]
        if index == "0":
            replies.append(world.http.get(f"/v1/datasets/{dataset_id}/receipts"))
        for reply in replies:
            assert reply.status_code in (400, 404), (path, reply.status_code)
            assert set(reply.json()) == {"error", "detail"}
            if "%2F" not in dataset_id and ".." not in path:  # the client normalised it: 404
                assert reply.status_code == 400, (path, reply.status_code)
    assert sorted(str(p) for p in world.agent.store.root.rglob("*")) == before


def test_bad_request_parameter(world) -> None:
    built = world.active_dataset()
    for query in ("", "?request=abc", "?request=1&request=2", "?request=1&x=2", "?request=" + "9" * 80):
        reply = world.get(world.requester, f"/v1/datasets/{built.hex}/shards/0{query}")
        assert reply.status_code == 400, query


def _raw(app, method: str, path: str) -> tuple[int, dict]:
    """Call the ASGI app with a path exactly as given (no client-side normalisation)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": unquote(path), "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [], "server": ("testserver", 80), "client": ("127.0.0.1", 1)}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_raw_dot_segments_are_400(world) -> None:
    app = world.http.app
    for path in ("/v1/datasets/../shards/0", "/v1/datasets/%2e%2e/shards/0", "/v1/datasets/../bundle",
                 "/v1/datasets/" + "ab" * 32 + "/shards/..", "/v1/datasets/./receipts",
                 "/v1/datasets/" + "ab" * 32 + "%0A/bundle"):
        for method in ("GET", "PUT"):
            status, body = _raw(app, method, path)
            assert status in (400, 405), (method, path, status)
            assert set(body) == {"error", "detail"}


def test_a_shard_above_the_whole_read_size_streams_the_same_bytes(world, monkeypatch) -> None:
    """Shards up to WHOLE_READ are read whole in the download's one hop; a larger file streams
    from the same open file: same body, hash header and receipt either way."""
    from holder_agent import operations
    built = world.active_dataset()
    req = world.request(built)
    index = built.my_shards(world.me)[0]
    whole = world.get(req.requester, _path(built, index, req.request_id))
    monkeypatch.setattr(operations, "WHOLE_READ", len(built.shards[index]) // 3)
    streamed = world.get(req.requester, _path(built, index, req.request_id))
    for reply in (whole, streamed):
        assert reply.status_code == 200 and reply.content == built.shards[index]
        assert reply.headers[HEADER_SHARD_HASH] == built.shard_hashes[index].hex()
    assert "content-length" in whole.headers and "content-length" not in streamed.headers
    assert whole.headers[HEADER_RECEIPT] == streamed.headers[HEADER_RECEIPT]
