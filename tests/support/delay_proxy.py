"""A TCP proxy that adds latency: every chunk read from either side is delivered
``delay`` seconds later (order kept, throughput not serialized), for tests of a far holder.

Run as ``python -m tests.support.delay_proxy LISTEN_PORT TARGET_PORT DELAY_S STATS_FILE``;
it writes the most connections it had open at once to ``STATS_FILE`` as they change, and
exits by itself after ``--lifetime`` seconds (600 by default). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path


class _Stats:
    def __init__(self, path: Path):
        self.path, self.open, self.most, self.total = path, 0, 0, 0

    def change(self, by: int) -> None:
        self.open += by
        self.total += max(by, 0)
        if self.open > self.most or by > 0:
            self.most = max(self.most, self.open)
            self.path.write_text(json.dumps({"most_open": self.most, "connections": self.total}))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(256 * 1024):
            await queue.put((loop.time() + delay, data))
    except OSError:
        pass
    await queue.put((0.0, b""))
    with contextlib.suppress(OSError):
        await sender


async def _serve(listen: int, target: int, delay: float, stats: _Stats, lifetime: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        stats.change(1)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            stats.change(-1)
            client_w.close()
            return
        try:
            await asyncio.gather(_pump(client_r, up_w, delay), _pump(up_r, client_w, delay))
        finally:
            stats.change(-1)
            for w in (client_w, up_w):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await asyncio.sleep(lifetime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("listen", type=int)
    parser.add_argument("target", type=int)
    parser.add_argument("delay", type=float)
    parser.add_argument("stats", type=Path)
    parser.add_argument("--lifetime", type=float, default=600.0)
    args = parser.parse_args()
    asyncio.run(_serve(args.listen, args.target, args.delay, _Stats(args.stats), args.lifetime))


if __name__ == "__main__":
    main()
