"""bench/shaping_proxy.py as a real process: bytes cross intact both ways and are counted per
link; a malformed --link is refused with a usage error. (Its timing is measured in `make bench`,
never asserted here.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.datapath import free_ports, wait_listening

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)
Proxied = tuple[int, Path, "subprocess.Popen[bytes]"]


def _echo_server(sock: socket.socket) -> None:
    """Echo each connection's bytes back until it half-closes, then close."""
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_echo_server, args=(server,), daemon=True).start()
    listen = free_ports(1)[0]
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "bench.shaping_proxy", "--link",
                             f"{listen}:127.0.0.1:{server.getsockname()[1]}:10", "--rate-mbit", "400",
                             "--stats", str(stats)], cwd=REPO)
    wait_listening(listen, 30, [proc])
    yield listen, stats, proc
    proc.terminate()
    proc.wait(10)
    server.close()


def _round_trip(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        sender = threading.Thread(target=lambda: (conn.sendall(PAYLOAD), conn.shutdown(socket.SHUT_WR)))
        sender.start()
        received = bytearray()
        while data := conn.recv(1 << 16):
            received += data
        sender.join()
    return bytes(received)


def test_bytes_cross_intact_both_ways_and_are_counted(proxied: Proxied) -> None:
    port, stats, proc = proxied
    assert _round_trip(port) == PAYLOAD
    assert _round_trip(port) == PAYLOAD  # a second connection on the same link
    proc.terminate()
    proc.wait(10)
    link = next(iter(json.loads(stats.read_text()).values()))
    assert link["up_bytes"] == link["down_bytes"] == 2 * len(PAYLOAD)
    assert link["connections"] >= 2


@pytest.mark.parametrize("spec", ["9001:127.0.0.1:8001", "x:127.0.0.1:8001:10", "9001:127.0.0.1:0:10"])
def test_malformed_link_is_a_usage_error(spec: str) -> None:
    run = subprocess.run([sys.executable, "-m", "bench.shaping_proxy", "--link", spec], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert "--link" in run.stderr
