"""The lean HTTP/1.1 exchange of the JSON-RPC adapter (``shardkey.httpwire``) against a real
socket server that answers with the bytes each test gives it: every framing a server may
use, and the failures a stale or broken connection shows."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator

import pytest

from shardkey.httpconn import STALE
from shardkey.httpwire import WireConnection
from tests.support.http_server import read_head


class _Canned:
    """Accepts connections; answers each request with the next canned bytes, then closes the
    connection when the answer is marked so. Records every request received."""

    def __init__(self, answers: list[tuple[bytes, bool]]):
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            conn, _ = self.listener.accept()
            with conn:
                while self.answers:
                    received = read_head(conn)
                    if not received:
                        break
                    head, _, body = received.partition(b"\r\n\r\n")
                    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                       if line.lower().startswith(b"content-length:")), b"0"))
                    while len(body) < length:
                        body += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + body)
                    answer, close = self.answers.pop(0)
                    conn.sendall(answer)
                    if close:
                        break


@pytest.fixture
def canned() -> Iterator[type[_Canned]]:
    yield _Canned


def _post(conn: WireConnection, body: bytes = b'{"id":1}') -> tuple[int, dict[str, str], bytes, bool]:
    return conn.exchange("POST", "/rpc?key=1", body, {"Content-Type": "application/json",
                                                      "Content-Length": str(len(body))})


def test_a_request_goes_out_whole_and_a_sized_answer_keeps_the_connection(canned) -> None:
    server = canned([(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-A: 1\r\nx-a: 2\r\n\r\n{\"a\":1}", False),
                     (b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}", False)])
    conn = WireConnection("127.0.0.1", server.port, timeout=5)
    try:
        assert _post(conn) == (200, {"content-length": "7", "x-a": "1, 2"}, b'{"a":1}', True)
        sock = conn.sock
        assert _post(conn)[:3] == (201, {"content-length": "2"}, b"{}")
        assert conn.sock is sock  # the same kept-alive connection
    finally:
        conn.close()
    first = server.requests[0]
    assert first.startswith(b"POST /rpc?key=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert first.endswith(b'\r\n\r\n{"id":1}') and b"Content-Length: 8\r\n" in first


def test_chunked_interim_and_close_delimited_answers_are_read_whole(canned) -> None:
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nTrailer: x\r\n\r\n")
    to_the_end = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end"
    server = canned([(chunked, False), (to_the_end, True)])
    conn = WireConnection("127.0.0.1", server.port, timeout=5)
    try:
        status, _, body, keep = _post(conn)
        assert (status, body, keep) == (200, b"abcdefg", True)
        status, _, body, keep = _post(conn)
        assert (status, body, keep) == (200, b"to the end", False)  # HTTP/1.0, no length: not reused
    finally:
        conn.close()


def test_connection_close_or_stray_bytes_mean_the_connection_is_not_reused(canned) -> None:
    server = canned([(b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 2\r\n"
                      b"Content-Length: 0\r\n\r\n", True)])
    conn = WireConnection("127.0.0.1", server.port, timeout=5)
    try:
        assert _post(conn) == (429, {"connection": "close", "retry-after": "2", "content-length": "0"},
                               b"", False)
    finally:
        conn.close()
    server = canned([(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n", False)])
    conn = WireConnection("127.0.0.1", server.port, timeout=5)
    try:
        assert _post(conn)[2:] == (b"{}", False)
    finally:
        conn.close()


@pytest.mark.parametrize(("answer", "error", "stale"), [
    (b"", http.client.RemoteDisconnected, True),  # closed before answering: sent again on a fresh one
    (b"garbage\r\n\r\n", http.client.BadStatusLine, True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead, False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", http.client.HTTPException, False),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http.client.HTTPException, False),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.HTTPException, False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0", http.client.IncompleteRead, False),
])
def test_a_broken_answer_raises_what_http_client_raises(canned, answer: bytes, error: type[Exception],
                                                        stale: bool) -> None:
    server = canned([(answer, True)])
    conn = WireConnection("127.0.0.1", server.port, timeout=5)
    try:
        with pytest.raises(error) as raised:
            _post(conn)
        assert isinstance(raised.value, STALE) is stale
    finally:
        conn.close()


def test_an_answer_head_past_the_limit_is_refused(canned) -> None:
    server = canned([(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n", True)])
    conn = WireConnection("127.0.0.1", server.port, timeout=5)
    try:
        with pytest.raises(http.client.LineTooLong):
            _post(conn)
    finally:
        conn.close()
