"""The JSON-RPC transport against real HTTP servers that misbehave: every failure is a
ChainError naming the endpoint without its path, query or credentials."""

from __future__ import annotations

import base64
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shardkey.chain.errors import ChainError
from shardkey.chain.retry import RetryPolicy
from shardkey.chain.rpc import JsonRpc, RpcError, block_from_rpc, receipt_from_rpc, redact_url

QUICK = RetryPolicy(total=1.5)  # transient failures are retried for 1.5 s, not the default 30 s
SECRET = "k3y-abcdef0123456789"  # noqa: S105 - a stand-in API key that must never be echoed


def _server(status: int, body: bytes) -> tuple[http.server.HTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://user:{SECRET}@127.0.0.1:{server.server_port}/v3/{SECRET}?key={SECRET}"


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[http.server.HTTPServer] = []

    def start(status: int, body: bytes) -> str:
        server, url = _server(status, body)
        servers.append(server)
        return url

    yield start
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, b"<html>gateway</html>", "not a JSON-RPC reply"),
    (502, b"bad gateway", "HTTP 502"),
    (200, b"[1, 2]", "not a JSON-RPC reply"),
])
def test_a_reply_that_is_not_json_rpc_is_a_chain_error(serve, status: int, body: bytes,
                                                       expected: str) -> None:
    rpc = JsonRpc(serve(status, body), timeout=5, retry=QUICK)
    with pytest.raises(ChainError, match=expected) as caught:
        rpc.call("eth_blockNumber", [])
    assert SECRET not in str(caught.value) and "eth_blockNumber" in str(caught.value)


def test_an_error_reply_keeps_code_message_and_revert_data(serve) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"error":{"code":3,"message":"execution reverted","data":"0x12345678"}}'
    rpc = JsonRpc(serve(200, body), timeout=5)
    with pytest.raises(RpcError) as caught:
        rpc.call("eth_call", [])
    assert (caught.value.code, caught.value.data, caught.value.is_revert) == (3, "0x12345678", True)
    assert SECRET not in str(caught.value)


def test_a_refused_transaction_is_not_a_revert(serve) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32003,"message":"insufficient funds for gas"}}'
    with pytest.raises(RpcError) as caught:
        JsonRpc(serve(200, body), timeout=5).call("eth_sendRawTransaction", ["0x00"])
    assert not caught.value.is_revert and "insufficient funds" in str(caught.value)


def test_an_unreachable_or_silent_endpoint_is_a_chain_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ChainError, match="ConnectionRefusedError") as caught:
        JsonRpc(f"http://127.0.0.1:{port}/{SECRET}", timeout=2, retry=QUICK).call("eth_chainId", [])
    assert SECRET not in str(caught.value)
    with socket.socket() as listening:  # accepts, never answers
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}/{SECRET}"
        with pytest.raises(ChainError, match="timed out") as caught:
            JsonRpc(url, timeout=0.5, retry=QUICK).call("eth_chainId", [])
    assert SECRET not in str(caught.value)


def test_node_answers_become_ints_bytes_and_checksummed_addresses() -> None:
    raw = {"transactionHash": "0x" + "ab" * 32, "blockHash": "0x" + "cd" * 32, "blockNumber": "0x10",
           "status": "0x1", "gasUsed": "0x5208", "from": "0x" + "aa" * 20, "to": None,
           "contractAddress": "0x5fbdb2315678afecb367f032d93f642f64180aa3", "logs": [{"x": 1}]}
    receipt = receipt_from_rpc(raw)
    assert receipt["transactionHash"] == bytes.fromhex("ab" * 32)
    assert (receipt["blockNumber"], receipt["status"], receipt["gasUsed"]) == (16, 1, 21000)
    assert receipt["contractAddress"] == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert receipt["to"] is None and receipt["logs"] == [{"x": 1}]
    block = block_from_rpc({"number": "0x2", "timestamp": "0x65", "hash": "0x" + "00" * 32})
    assert (block["number"], block["timestamp"], block["baseFeePerGas"]) == (2, 101, 0)
    assert redact_url(f"https://u:{SECRET}@rpc.example:8545/v3/{SECRET}?k={SECRET}") == \
        "https://rpc.example:8545"


class _Recording(http.server.ThreadingHTTPServer):
    """Answers every POST with a JSON-RPC result and records what reached it: the request
    target, the Authorization header and the client port of each request (one port per
    connection). With ``drop_after_answer`` it closes each connection right after its
    answer without announcing it (as a provider's load balancer does with idle ones)."""

    daemon_threads = True

    def __init__(self, drop_after_answer: bool = False) -> None:
        self.seen: list[tuple[str, str | None, int]] = []
        self.drop_after_answer = drop_after_answer
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive unless closed

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.seen.append((self.path, self.headers.get("Authorization"), self.client_address[1]))
                body = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if outer.drop_after_answer:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_calls_reuse_one_connection_and_carry_the_urls_path_query_and_credentials() -> None:
    server = _Recording()
    try:
        rpc = JsonRpc(f"http://user:{SECRET}@127.0.0.1:{server.server_port}/v3/{SECRET}?key=1", timeout=5)
        assert [rpc.call("eth_chainId", []) for _ in range(3)] == ["0x1"] * 3
        targets, auths, ports = zip(*server.seen, strict=True)
        assert set(targets) == {f"/v3/{SECRET}?key=1"}
        expected = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
        assert set(auths) == {expected}
        assert len(set(ports)) == 1  # kept alive: one connection for the three calls
        rpc.close()
    finally:
        server.shutdown()


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_retry(caplog) -> None:
    server = _Recording(drop_after_answer=True)
    try:
        rpc = JsonRpc(f"http://127.0.0.1:{server.server_port}/", timeout=5)
        with caplog.at_level(logging.WARNING, logger="shardkey.chain.rpc"):
            for _ in range(4):
                assert rpc.call("eth_blockNumber", []) == "0x1"
                time.sleep(0.05)  # the server's close reaches the idle connection first
        assert len(server.seen) == 4 and len({port for _, _, port in server.seen}) == 4
        assert not [r for r in caplog.records if "transient" in r.getMessage()]  # no failed attempt
        rpc.close()
    finally:
        server.shutdown()
