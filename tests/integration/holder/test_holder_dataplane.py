"""The holder's data plane (holder_agent/dataplane.py) in a real ``python -m holder_agent``:
shard uploads and downloads are served on the public port itself, on kept-alive
connections; every other request reaches the full application, relayed byte for byte, with
the answers the application gives; a refused or broken upload leaves nothing staged."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shardkey.devnet.anvil import free_port
from tests.integration.holder.test_holder_process import _start, _write_config
from tests.support.http_server import read_head
from tests.support.pagecache import drops_pages

DATASET = "0x" + "ab" * 32


@dataclass
class Agent:
    port: int
    store: Path
    pid: int
    log: list[dict[str, object]] = field(default_factory=list)  # its JSON log lines, once stopped


@pytest.fixture
def agent(world, tmp_path: Path) -> Iterator[Agent]:
    with running_agent(world, tmp_path) as running:
        yield running


@contextlib.contextmanager
def running_agent(world, tmp_path: Path, **settings: object) -> Iterator[Agent]:
    """A running holder agent (stopped with SIGTERM afterwards: it must exit 0); ``settings``
    are written to its configuration file."""
    port = free_port()
    proc = _start(_write_config(world, tmp_path, port, **settings))
    running = Agent(port, tmp_path / "store", proc.pid)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v1/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert proc.poll() is None, "the holder agent exited"
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    running.log.extend(json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{"))
    assert proc.returncode == 0


def _put(conn: http.client.HTTPConnection, world, path: str, body: bytes) -> tuple[int, dict[str, str], dict]:
    conn.request("PUT", path, body=body, headers=world.headers(world.owner, "PUT", path, body))
    answer = conn.getresponse()
    return answer.status, dict(answer.getheaders()), json.loads(answer.read())


def test_uploads_downloads_and_other_routes_share_one_kept_alive_connection(world, agent) -> None:
    port = agent.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    path = f"/v1/datasets/{DATASET}/shards/3"
    body = b"shard bytes " * 20
    status, _, answer = _put(conn, world, path, body)
    assert status == 201 and answer["status"] == "staged", answer
    assert answer["sha256"] == hashlib.sha256(body).hexdigest() and answer["size"] == len(body)
    status, _, answer = _put(conn, world, path, body)  # the same connection, kept alive
    assert status == 201, answer
    query = f"/v1/datasets/{DATASET}/shards/3?request=4242"
    conn.request("GET", query, headers=world.headers(world.requester, "GET", query))
    refused = conn.getresponse()
    assert refused.status == 404 and json.loads(refused.read())["error"] == "unknown_request"
    conn.request("GET", "/v1/health")  # not the data plane's: relayed to the application
    health = conn.getresponse()
    assert health.status == 200 and json.loads(health.read())["address"] == world.me
    status, _, answer = _put(conn, world, f"/v1/datasets/{DATASET}/shards/4", body)  # relayed from now on
    assert status == 201 and answer["status"] == "staged", answer
    conn.close()


def test_the_data_plane_and_the_application_refuse_alike(world, agent) -> None:
    port = agent.port
    queries = (f"/v1/datasets/{DATASET}/shards/1?request=x", f"/v1/datasets/{DATASET}/shards/1?a=1&request=2",
               "/v1/datasets/0x12/shards/1?request=2", f"/v1/datasets/{DATASET}/shards/-1?request=2")
    for query in queries:
        headers = world.headers(world.requester, "GET", query)
        # HTTP/1.1: the data plane answers; HTTP/1.0: relayed, the application answers
        answers = [_raw_get(port, query, headers, version) for version in ("HTTP/1.1", "HTTP/1.0")]
        assert answers[0] == answers[1] and answers[0][0] in (400, 404), (query, answers)
    unsigned = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    unsigned.request("PUT", f"/v1/datasets/{DATASET}/shards/1", body=b"x" * 10)
    answer = unsigned.getresponse()
    assert answer.status == 401 and json.loads(answer.read())["error"] == "unauthorized"


def test_requests_it_does_not_take_get_the_applications_answer(world, agent) -> None:
    port = agent.port
    path = f"/v1/datasets/{DATASET}/shards/5"
    body = b"y" * 600
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # chunked upload
        headers = world.headers(world.owner, "PUT", path, body)
        head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + b"258\r\n" + body + b"\r\n0\r\n\r\n")
        reply = read_head(sock)
    assert reply.startswith(b"HTTP/1.1 201"), reply[:200]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # not HTTP at all
        sock.sendall(b"BREW /pot HTCPCP/1.0\r\n\r\n")
        reply = read_head(sock)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # a head over 16 KiB
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nX-Pad: " + b"p" * 20_000 + b"\r\n\r\n")
        reply = read_head(sock)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # one just under it
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nX-Pad: " + b"p" * 16_000 + b"\r\n\r\n")
        reply = read_head(sock)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/no/such/route")
    answer = conn.getresponse()
    assert answer.status == 404 and json.loads(answer.read())["error"] == "not_found"


def test_an_upload_refused_or_cut_off_leaves_nothing_staged(world, agent) -> None:
    port, store = agent.port, agent.store
    path = f"/v1/datasets/{DATASET}/shards/6"
    body = b"z" * 1000
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        headers = world.headers(world.owner, "PUT", path, body)
        head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body[:400])  # then the client goes away
    too_big = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    big = b"w" * 2048  # over max_body_bytes: refused before a body byte is read
    too_big.request("PUT", path, body=big, headers=world.headers(world.owner, "PUT", path, big))
    answer = too_big.getresponse()
    assert answer.status == 413 and answer.getheader("connection") == "close"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and list((store / "incoming").iterdir()):
        time.sleep(0.05)
    assert list((store / "incoming").iterdir()) == []  # the cut-off body was discarded
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    status, _, answer = _put(conn, world, path, body)  # its staging charge was given back too
    assert status == 201 and answer["size"] == 1000, answer


def test_uploads_are_served_by_the_data_plane_itself(world, tmp_path) -> None:
    """The refusal lines say which part answered: an upload's is the data plane's own."""
    with running_agent(world, tmp_path) as running:
        _refuse_a_large_upload(world, running.port)
    refused = [e for e in running.log if e.get("msg") == "refused" and e.get("status") == 413]
    assert [e["logger"] for e in refused] == ["holder_agent.dataplane"], running.log


def test_a_new_holders_first_large_upload_goes_into_buffers_mapped_at_its_start(world, tmp_path) -> None:
    # Received straight into a staging buffer (O_DIRECT): before the holder mapped its pool
    # at start, the first 4 MiB upload faulted the buffer's 1,024 pages (1,090 faults in all).
    if not drops_pages(tmp_path):
        pytest.skip(f"{tmp_path}'s filesystem keeps every page (tmpfs): uploads are not direct")
    with running_agent(world, tmp_path, max_body_bytes=8 << 20) as running:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
        for index in range(3):
            body = os.urandom(4 << 20)
            before = _minor_faults(running.pid)
            status, _, answer = _put(conn, world, f"/v1/datasets/{DATASET}/shards/{index}", body)
            assert status == 201 and answer["sha256"] == hashlib.sha256(body).hexdigest(), answer
            assert _minor_faults(running.pid) - before < 400, index
        conn.close()


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def _refuse_a_large_upload(world, port: int) -> None:
    path = f"/v1/datasets/{DATASET}/shards/7"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    big = b"w" * 2048
    conn.request("PUT", path, body=big, headers=world.headers(world.owner, "PUT", path, big))
    assert conn.getresponse().status == 413
    conn.close()


def _raw_get(port: int, target: str, headers: dict[str, str], version: str) -> tuple[int, str]:
    """Status and error code of one GET sent as ``version``, read to the connection's end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        fields = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"GET {target} {version}\r\nHost: x\r\nConnection: close\r\n{fields}\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)["error"]


