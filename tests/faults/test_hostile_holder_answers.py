"""A holder answering with a body that does not stop cannot run a fetch out of memory.

Two of the five holders are replaced by servers that answer every shard download with
200 and a flood of bytes (one without end in practice, one far over a shard's size). The
client reads each answer streamed and capped at the exact ciphertext length of a shard,
aborts those downloads, counts each as one of the ``p = 2`` faults the erasure code
tolerates, and restores the file from the three honest holders, with bounded memory.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from shardkey.client.fetch import fetch
from shardkey.client.retrieval import load_ephemeral_key
from shardkey.crypto.stream import MAGIC
from tests.faults.conftest import Net
from tests.support.http_server import serve

MIB = 1 << 20
FLOOD = 128 * MIB  # "without end" for the client; finite so that a broken client ends too


def _flooding_holder(total: int, header: bytes, served: list[str]) -> Starlette:
    async def shard(request: Request) -> Response:
        served.append(request.url.path)
        def body() -> Iterator[bytes]:
            yield header
            chunk = os.urandom(MIB)
            for _ in range(total // MIB):
                yield chunk
        return StreamingResponse(body(), media_type="application/octet-stream")

    return Starlette(routes=[Route("/v1/datasets/{ds}/shards/{index}", shard, methods=["GET"])])


def test_flooding_holders_cost_bounded_memory_and_the_file_restores(net: Net, tmp_path: Path) -> None:
    data = os.urandom(30_000)  # 3 stripes of 3 x 4 KiB
    dataset = net.store(tmp_path, data)
    # one answers with a plausible STREAM header (chunk size 4 KiB) then floods; one with junk
    served: list[str] = []
    floods = {"holder-1": _flooding_holder(FLOOD, MAGIC + (4096).to_bytes(4, "big") + bytes(7), served),
              "holder-2": _flooding_holder(FLOOD, b"", served)}
    for name in floods:
        net.kill(name)
    rid = net.request(dataset)
    out = tmp_path / "restored.bin"
    servers = [serve(app, urlsplit(net.service(name)["endpoint"]).port) for name, app in floods.items()]
    for server in servers:
        server.__enter__()
    tracemalloc.start()
    try:
        result = fetch(net.fresh_chain(), net.account("requester"), rid, out,
                       load_ephemeral_key(net.home / "requests", rid), timeout=120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        for server in servers:
            server.__exit__(None, None, None)
    assert len(served) >= 2, served  # both flooding holders were asked (data positions first)
    assert out.read_bytes() == data
    assert result.bytes_written == len(data)
    assert peak < 32 * MIB, f"fetch peaked at {peak / MIB:.0f} MiB of Python memory"
