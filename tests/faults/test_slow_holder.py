"""A far holder: one holder behind a real proxy process (the benchmarks' shaping proxy,
``bench.shaping_proxy``) that delays every byte by half a round trip each way.
A store and a fetch still succeed, the client kept several requests in flight to that
holder at once (its transfer lanes) instead of one round trip after another, and the fetch
read parity shards from the near holders for the stripes the far one lagged behind on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shardkey.client.store import choose_holders
from shardkey.devnet.anvil import free_port
from tests.faults.conftest import Net
from tests.support.waiting import wait_until

RTT_MS = 100


def first_shard_holder(net: Net) -> str:
    """The name of the holder a store puts at position 0 of every stripe (a data shard)."""
    chain = net.fresh_chain()
    infos = chain.holders.holders_info(chain.holders.addresses())
    shard_holders, _ = choose_holders(infos, 5, None, 3)
    return net.name_of(shard_holders[0])


@pytest.fixture
def far_holder(net: Net, tmp_path: Path) -> Iterator[Path]:
    """The first shard holder moved to another port, its registered one served by the
    delaying proxy; yields the proxy's stats file. Afterwards it listens on its own port again."""
    name = first_shard_holder(net)
    entry = net.service(name)
    config = Path(entry["config"])
    original = config.read_text()
    port = urlsplit(entry["endpoint"]).port
    inner = free_port()
    stats = tmp_path / "proxy.json"
    net.stop(name)
    config.write_text(re.sub(r"(?m)^listen_port = \d+$", f"listen_port = {inner}", original))
    repo = Path(__file__).resolve().parents[2]
    proxy = subprocess.Popen([sys.executable, "-m", "bench.shaping_proxy", "--link",
                              f"{port}:127.0.0.1:{inner}:{RTT_MS}", "--rate-mbit", "1000",
                              "--stats", str(stats)], cwd=repo)
    try:
        # Its stats file is written once it listens.
        wait_until(lambda: stats.exists() or proxy.poll() is not None, 30, "the shaping proxy listening")
        assert proxy.poll() is None, "the shaping proxy exited"
        net.start(name)
        yield stats
    finally:
        proxy.kill()
        proxy.wait(10)
        net.stop(name)
        config.write_text(original)
        net.start(name)


def test_store_and_fetch_through_a_far_holder(net: Net, far_holder: Path, tmp_path: Path) -> None:
    data = os.urandom(300_000)  # 25 stripes of 3 x 4 KiB: 125 shards, 25 on the far holder
    dataset = net.store(tmp_path, data)
    rid = net.request(dataset)
    out = tmp_path / "restored.bin"
    fetched = net.json("fetch", str(rid), "-o", str(out))
    assert out.read_bytes() == data
    (link,) = json.loads(far_holder.read_text()).values()
    assert link["down_bytes"] > 0 and link["up_bytes"] > 0, link  # the far holder's traffic crossed it
    assert link["most_open"] >= 2, link  # requests to the far holder overlapped
    # The far holder holds a data shard of every stripe. Once it had a set of lanes more
    # queued than a parity holder, stripes were read from parity instead of waiting on it.
    assert fetched["parity_shards"] >= 5, fetched
