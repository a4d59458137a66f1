"""A latency- and bandwidth-shaping TCP proxy: ``python -m bench.shaping_proxy``.

Each ``--link LISTEN_PORT:TARGET_HOST:TARGET_PORT:RTT_MS`` is one network path (one holder
far away). Every connection accepted on LISTEN_PORT is relayed to the target; all connections
of a link share its bandwidth, each direction separately (full duplex). A direction is modelled
as a pipe, not as a sleep per chunk:

- bytes leave at the link's rate: a chunk read at time ``t`` starts on the wire at
  ``max(t, wire_free)``, and the wire is busy for ``len / rate`` after that;
- they arrive one one-way delay (RTT / 2) after they left, and only then are written to the
  other side, in order per connection;
- at most ``--buffer-kib`` plus one bandwidth-delay product per link direction are in flight
  (read and not yet written); the reader stops reading when that is full, so the sender's
  socket buffers fill and it slows down (back-pressure), as on a real bottleneck.

The reader never sleeps for transmission or delay (it only waits for room in the pipe), so
chunks pipeline: a link carries ``rate`` bytes per second whatever its RTT, once enough bytes
are in flight. A new connection's first bytes leave one RTT after it was accepted (the TCP
handshake a real path would cost). Bytes relayed per link and direction are written as JSON
to ``--stats`` (atomically, every 0.2 s while they change, and at exit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 64 * 1024


@dataclass
class Direction:
    """One direction of a link: its wire and its in-flight budget."""

    rate: float  # bytes per second
    delay: float  # one-way, seconds
    budget: int  # bytes in flight at most
    wire_free: float = 0.0
    in_flight: int = 0
    relayed: int = 0
    room: asyncio.Condition = field(default_factory=asyncio.Condition)

    def send(self, now: float, size: int, not_before: float) -> float:
        """Put ``size`` bytes on the wire; return when they arrive."""
        start = max(now, self.wire_free, not_before)
        self.wire_free = start + size / self.rate
        return self.wire_free + self.delay

    async def reserve(self, size: int, broken: asyncio.Event) -> None:
        """Wait for room for ``size`` bytes (or until the connection's far side broke)."""
        async with self.room:
            await self.room.wait_for(lambda: broken.is_set() or self.in_flight == 0
                                     or self.in_flight + size <= self.budget)
            self.in_flight += size

    async def wake(self) -> None:
        async with self.room:
            self.room.notify_all()

    async def release(self, size: int) -> None:
        async with self.room:
            self.in_flight -= size
            self.relayed += size
            self.room.notify_all()


@dataclass
class Link:
    name: str
    listen_port: int
    target_host: str
    target_port: int
    rtt: float
    up: Direction  # client -> target
    down: Direction  # target -> client
    connections: int = 0  # accepted so far
    open: int = 0  # open now
    most_open: int = 0  # open at once, at most (requests a client kept in flight on this path)


async def _pump(reader: asyncio.StreamReader, source: asyncio.StreamWriter, writer: asyncio.StreamWriter,
                way: Direction, not_before: float) -> None:
    """Relay one direction of one connection (``reader``, whose socket ``source`` writes) to
    ``writer`` through ``way``'s pipe. An end of stream is passed on (half-close); a broken
    socket on either side closes both."""
    loop = asyncio.get_running_loop()
    queue: deque[tuple[float, bytes]] = deque()
    ready = asyncio.Event()
    broken = asyncio.Event()  # the far side failed: stop reading
    done = False

    async def deliver() -> None:
        try:
            await deliver_all()
        except (OSError, ConnectionError, RuntimeError):
            broken.set()
            await way.wake()

    async def deliver_all() -> None:
        while True:
            while not queue:
                if done:
                    return
                ready.clear()
                await ready.wait()
            arrival, chunk = queue.popleft()
            wait = arrival - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:  # the sender's end of stream, delivered after the data before it
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            try:
                writer.write(chunk)
                await writer.drain()
            finally:
                await way.release(len(chunk))

    deliverer = asyncio.create_task(deliver())
    try:
        while not broken.is_set():
            chunk = await reader.read(CHUNK)
            if chunk:
                await way.reserve(len(chunk), broken)
            queue.append((way.send(loop.time(), len(chunk), not_before), chunk))
            ready.set()
            if not chunk:
                break
    except (OSError, asyncio.IncompleteReadError):
        broken.set()
    finally:
        done = True
        ready.set()
    try:
        await deliverer
    finally:
        for _, chunk in queue:  # undelivered after a reset: give their room back
            if chunk:
                await way.release(len(chunk))
        queue.clear()
        if broken.is_set():
            source.close()
            writer.close()


async def _serve_connection(link: Link, client_r: asyncio.StreamReader,
                            client_w: asyncio.StreamWriter) -> None:
    loop = asyncio.get_running_loop()
    handshake_done = loop.time() + link.rtt
    link.connections += 1
    try:
        target_r, target_w = await asyncio.open_connection(link.target_host, link.target_port)
    except OSError:
        client_w.close()
        return
    link.open += 1
    link.most_open = max(link.most_open, link.open)
    try:
        await asyncio.gather(_pump(client_r, client_w, target_w, link.up, handshake_done),
                             _pump(target_r, target_w, client_w, link.down, handshake_done))
    finally:
        link.open -= 1
        for w in (client_w, target_w):
            w.close()
            with contextlib.suppress(OSError, ConnectionError):
                await w.wait_closed()


def _write_stats(path: Path, links: list[Link]) -> None:
    data = {link.name: {"listen_port": link.listen_port, "target": f"{link.target_host}:{link.target_port}",
                        "rtt_ms": link.rtt * 1000, "rate_bytes_per_s": link.up.rate,
                        "up_bytes": link.up.relayed, "down_bytes": link.down.relayed,
                        "connections": link.connections, "most_open": link.most_open}
            for link in links}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def parse_link(spec: str, rate: float, buffer: int) -> Link:
    """``LISTEN_PORT:TARGET_HOST:TARGET_PORT:RTT_MS`` -> a :class:`Link`."""
    try:
        listen, host, port, rtt_ms = spec.split(":")
        rtt = float(rtt_ms) / 1000
        listen_port, target_port = int(listen), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--link {spec!r}: expected LISTEN_PORT:TARGET_HOST:TARGET_PORT:RTT_MS, "
            "e.g. 9001:127.0.0.1:8001:80"
        ) from None
    if rtt < 0 or not (0 < listen_port < 65536 and 0 < target_port < 65536):
        raise argparse.ArgumentTypeError(f"--link {spec!r}: ports 1-65535 and RTT >= 0")
    bdp = int(rate * rtt / 2)

    def direction() -> Direction:
        return Direction(rate, rtt / 2, bdp + buffer)

    return Link(f"{listen_port}->{port}", listen_port, host, target_port, rtt, direction(), direction())


async def run(links: list[Link], stats: Path | None, listen_host: str) -> None:
    servers = []
    for link in links:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, link: Link = link) -> None:
            await _serve_connection(link, r, w)
        servers.append(await asyncio.start_server(handle, listen_host, link.listen_port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    last: tuple[int, ...] = ()
    try:
        while not stop.is_set():
            if stats is not None:
                now = tuple(n for x in links for n in (x.up.relayed, x.down.relayed, x.connections,
                                                        x.most_open))
                if now != last:
                    _write_stats(stats, links)
                    last = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        for server in servers:
            server.close()
        if stats is not None:
            _write_stats(stats, links)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shaping_proxy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--link", action="append", required=True, metavar="LISTEN:HOST:PORT:RTT_MS",
                        help="one shaped path (repeatable)")
    parser.add_argument("--rate-mbit", type=float, default=100.0,
                        help="bandwidth cap of each link, each direction, in Mbit/s (default 100)")
    parser.add_argument("--buffer-kib", type=int, default=512,
                        help="queue per link direction beyond one bandwidth-delay product (default 512)")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--stats", type=Path, default=None, help="JSON file of bytes relayed per link")
    args = parser.parse_args(argv)
    if args.rate_mbit <= 0 or args.buffer_kib < 64:
        parser.error("--rate-mbit must be > 0 and --buffer-kib >= 64")
    rate = args.rate_mbit * 1e6 / 8
    try:
        links = [parse_link(spec, rate, args.buffer_kib * 1024) for spec in args.link]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    asyncio.run(run(links, args.stats, args.listen_host))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
