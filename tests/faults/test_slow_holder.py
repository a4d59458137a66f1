"""A far holder: one holder behind a real proxy process that delays every byte each way.
A store and a fetch still succeed, and the client kept several requests in flight to that
holder at once (its transfer lanes) instead of one round trip after another."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shardkey.devnet.anvil import free_port
from tests.faults.conftest import Net

DELAY = 0.05  # seconds each way: a 100 ms round trip


@pytest.fixture
def far_holder(net: Net, tmp_path: Path) -> Iterator[Path]:
    """holder-1 moved to another port, its registered one served by the delaying proxy;
    yields the proxy's stats file. Afterwards holder-1 listens on its own port again."""
    entry = net.service("holder-1")
    config = Path(entry["config"])
    original = config.read_text()
    port = urlsplit(entry["endpoint"]).port
    inner = free_port()
    stats = tmp_path / "proxy.json"
    net.stop("holder-1")
    config.write_text(re.sub(r"(?m)^listen_port = \d+$", f"listen_port = {inner}", original))
    repo = Path(__file__).resolve().parents[2]
    proxy = subprocess.Popen([sys.executable, "-m", "tests.support.delay_proxy", str(port), str(inner),  # noqa: S603
                              str(DELAY), str(stats), "--lifetime", "600"], cwd=repo)
    try:
        time.sleep(0.5)
        net.start("holder-1")
        yield stats
    finally:
        proxy.kill()
        proxy.wait(10)
        net.stop("holder-1")
        config.write_text(original)
        net.start("holder-1")


def test_store_and_fetch_through_a_far_holder(net: Net, far_holder: Path, tmp_path: Path) -> None:
    data = os.urandom(300_000)  # 25 stripes of 3 x 4 KiB: 125 shards, 25 on the far holder
    dataset = net.store(tmp_path, data)
    rid = net.request(dataset)
    out = tmp_path / "restored.bin"
    net.fetch(rid, out)
    assert out.read_bytes() == data
    stats = json.loads(far_holder.read_text())
    assert stats["most_open"] >= 2, stats  # requests to the far holder overlapped
