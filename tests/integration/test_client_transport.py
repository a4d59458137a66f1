"""The client's lean holder transport against real HTTP servers: caps, a stale keep-alive
connection retried freshly signed, a dripping holder cut off by the overall deadline, and
how failures are named (shardkey/client/transport.py, holder_http.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from eth_account import Account
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shardkey.chain.chaintime import BlockHead, ChainTime
from shardkey.client.holder_http import HolderClient, HolderRequestError
from shardkey.client.transport import ERROR_BODY_CAP, Transport
from shardkey.crypto.stripe import stored_shard_length
from shardkey.devnet.anvil import free_port
from shardkey.httpauth import HEADER_CONTENT_SHA256, HEADER_NONCE, HEADER_SHARD_HASH
from tests.support.http_server import serve

HOLDER = "0x" + "ab" * 20
SHARD_SIZE = 4096
STORED = stored_shard_length(SHARD_SIZE)
BODY = bytes(range(256)) * (STORED // 256) + bytes(STORED % 256)


def _app(seen: list[dict[str, str]]) -> Starlette:
    async def exact(request: Request) -> Response:
        seen.append(dict(request.headers))
        return Response(BODY, headers={HEADER_SHARD_HASH: hashlib.sha256(BODY).hexdigest()})

    async def chunked(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for at in range(0, len(BODY), 1000):
                yield BODY[at:at + 1000]
        return StreamingResponse(parts(), headers={HEADER_SHARD_HASH: hashlib.sha256(BODY).hexdigest()})

    async def flood(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield bytes(64 * 1024)
        return StreamingResponse(parts())

    async def long(request: Request) -> Response:
        return Response(BODY + b"x")

    async def drip(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for _ in range(100):  # ~20 s in all; the client gives up after its 1 s deadline
                yield b"x"
                await asyncio.sleep(0.2)
        return StreamingResponse(parts())

    async def refuse(request: Request) -> Response:
        detail = "shard 3 is not held here" + " " * 9000
        return JSONResponse({"error": "no", "detail": detail}, status_code=404)

    async def echo(request: Request) -> Response:
        body = await request.body()
        seen.append(dict(request.headers))
        return JSONResponse({"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)})

    async def conflict(request: Request) -> Response:
        detail = "shard 1 is not assigned here"
        return JSONResponse({"error": "not_assigned", "detail": detail}, status_code=409)

    return Starlette(routes=[Route("/v1/repair/datasets/{ds}/shards/{index}", conflict, methods=["PUT"]),
                             Route("/v1/datasets/{ds}/shards/{index}", exact, methods=["GET"]),
                             Route("/v1/datasets/{ds}/shards/{index}", echo, methods=["PUT"]),
                             Route("/chunked", chunked), Route("/flood", flood), Route("/long", long),
                             Route("/drip", drip), Route("/refuse", refuse)])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    with serve(_app(seen)) as url:
        yield url, seen


def _client(url: str, timeout: float = 10.0) -> HolderClient:
    clock = ChainTime(lambda: BlockHead(1, 1_700_000_000))
    return HolderClient(HOLDER, url, Account.from_key("0x" + "11" * 32), clock, timeout=timeout, lanes=2)


def test_a_shard_is_read_whole_into_the_callers_buffer_over_one_kept_connection(server) -> None:
    url, seen = server
    client = _client(url)
    buffer = bytearray(STORED)
    try:
        for _ in range(3):
            served = client.get_shard(b"\x01" * 32, 7, 5, SHARD_SIZE, into=buffer)
            assert served.data.obj is buffer and bytes(served.data) == BODY
            assert served.sha256 == hashlib.sha256(BODY).digest()
        client.put_shard(b"\x01" * 32, 7, memoryview(BODY))
    finally:
        client.close()
    assert seen[-1][HEADER_CONTENT_SHA256.lower()] == hashlib.sha256(BODY).hexdigest()
    assert len({h[HEADER_NONCE.lower()] for h in seen[-4:]}) == 4  # each request signed afresh


def test_a_chunked_body_reads_the_same_and_caps_hold(server) -> None:
    url, _ = server
    with contextlib.closing(Transport(HOLDER, url, timeout=10)) as transport:
        answer = transport.request("GET", "/chunked", cap=STORED, what="shard 1")
        assert answer.body is not None and bytes(answer.body) == BODY
        assert transport.request("GET", "/chunked", cap=STORED, what="shard 1").status == 200  # reused
        with pytest.raises(HolderRequestError, match=f"shard 2 longer than the {STORED} bytes expected"):
            transport.request("GET", "/flood", cap=STORED, what="shard 2")
        with pytest.raises(HolderRequestError, match=f"shard 3 longer than the {STORED} bytes expected"):
            transport.request("GET", "/long", cap=STORED, what="shard 3")


def test_a_holder_dripping_bytes_is_cut_off_at_the_deadline(server) -> None:
    url, _ = server
    with contextlib.closing(Transport(HOLDER, url, timeout=1.0)) as transport:
        with pytest.raises(HolderRequestError, match=r"shard 4 not received within 1 s; download aborted"):
            transport.request("GET", "/drip", cap=STORED, what="shard 4")


def test_error_answers_are_read_truncated_and_named(server) -> None:
    url, _ = server
    with contextlib.closing(Transport(HOLDER, url, timeout=10)) as transport:
        answer = transport.request("GET", "/refuse", cap=STORED, what="shard 5")
        assert answer.status == 404 and answer.body is not None and len(answer.body) == ERROR_BODY_CAP
        assert transport.request("GET", "/chunked", cap=STORED, what="shard 1").status == 200
    client = _client(url)
    try:
        with pytest.raises(HolderRequestError) as caught:
            client.put_repair_shard(b"\x01" * 32, 1, b"abc", hashlib.sha256(b"abc").digest())
    finally:
        client.close()
    assert caught.value.status == 409 and caught.value.holder == HOLDER
    assert str(caught.value) == f"holder {HOLDER}: HTTP 409: shard 1 is not assigned here"


def test_an_unreachable_holder_is_named_with_its_endpoint() -> None:
    port = free_port()
    client = _client(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(HolderRequestError) as caught:
            client.get_shard(b"\x01" * 32, 1, 1, SHARD_SIZE)
    finally:
        client.close()
    assert str(caught.value) == (f"holder {HOLDER}: unreachable at http://127.0.0.1:{port} "
                                 "(ConnectionRefusedError)")


def _one_shot_server(answers: int) -> tuple[int, list[bytes], threading.Thread]:
    """A raw HTTP/1.1 server that answers one request per connection with keep-alive, then
    closes the connection without saying so (as an idle keep-alive timeout does)."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def run() -> None:
        with listener:
            for _ in range(answers):
                conn, _ = listener.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    requests.append(data)
                    body = json.dumps({"ok": True}).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], requests, thread


def test_a_stale_kept_connection_is_retried_fresh_and_freshly_signed() -> None:
    port, requests, thread = _one_shot_server(2)
    client = _client(f"http://127.0.0.1:{port}")
    try:
        client.put_shard(b"\x02" * 32, 0, b"first")
        client.put_shard(b"\x02" * 32, 1, b"second")  # its kept connection was closed by the server
    finally:
        client.close()
    thread.join(5)
    assert len(requests) == 2
    nonces = [line for r in requests for line in r.split(b"\r\n")
              if line.lower().startswith(HEADER_NONCE.lower().encode())]
    assert len(set(nonces)) == 2
    assert b"/shards/1 " in requests[1]


def test_a_malformed_endpoint_fails_its_requests_not_the_client() -> None:
    client = _client("ftp://nowhere")
    try:
        with pytest.raises(HolderRequestError, match="endpoint 'ftp://nowhere' is not an http"):
            client.get_shard(b"\x01" * 32, 1, 1, SHARD_SIZE)
    finally:
        client.close()
