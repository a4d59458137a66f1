"""A JSON-RPC proxy that behaves like a hosted provider at its worst, in front of a real node.

It forwards every call to ``upstream`` (anvil) and, on the way:

- refuses ``eth_getLogs`` over more than ``range_cap`` blocks, cycling through the
  refusal messages hosted providers send (with the suggested range or stated cap where
  they give one), see :data:`REFUSALS`;
- answers a ``rate_limit_share`` of calls with HTTP 429 and ``Retry-After``;
- now and then (``lag_every`` calls) lags its head by up to ``max_lag`` blocks for a
  while: ``eth_blockNumber`` answers the lagged head and ``eth_getLogs`` past it is
  refused with "block range extends beyond current head block";
- answers 503 to everything while ``down`` is set (fail-over tests);
- refuses JSON-RPC batches (a list of calls) larger than ``batch_cap`` calls (0: every batch) with
  one error object, as providers without batch support answer; a batch it takes goes through
  all of the above call by call (an item may be rate-limited while the others are answered);
- holds every ``eth_sendRawTransaction`` while ``hold_sends`` is set, until
  :meth:`HostileRpc.release_sends` forwards them one by one in arrival order (a provider whose
  mempool propagation is slow: a transaction estimated now may land after one sent later).

Use :func:`hostile_rpc` in tests (a thread; ``proxy.url`` and ``proxy.stats``), or run
it as a process for a whole system behind it (it prints its URL; ``GET /stats`` answers
what it did, as JSON)::

    python -m tests.support.hostile_rpc --upstream http://127.0.0.1:8545 --port 9545 --cap 10
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

# (message template, kind): {first} {last} {cap} are filled in per refusal.
REFUSALS: list[tuple[str, int]] = [
    ("query returned more than 10000 results. Try with this block range [{first}, {last}].", -32005),
    ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no "
     "limit on the response size, or you can request any block range with a cap of 10K logs in the "
     "response. Based on your parameters, this block range should work: [{first}, {last}]", -32602),
    ("exceed maximum block range: {cap}", -32000),
    ("query exceeds max block range {cap}", -32600),
    ("query returned more than 10000 results", -32005),
    ("your request exceeded the allowed block range of blocks, try a smaller one", -32602),
]
HEAD_REFUSAL = "block range extends beyond current head block"


@dataclass
class ProxyConfig:
    """How hostile the proxy is (all of it can change while it runs)."""

    range_cap: int | None = 10
    rate_limit_share: float = 0.0
    retry_after: str = "0"
    lag_every: int = 0  # 0: never lag
    max_lag: int = 3
    lag_calls: int = 5  # calls a lag lasts
    down: bool = False
    seed: int = 12
    rate_limit_next: int = 0  # the next this many calls are answered 429 (then counts down)
    refusals: list[int] | None = None  # indexes into REFUSALS to cycle through (None: all)
    hold_sends: bool = False  # hold eth_sendRawTransaction until release_sends()
    batch_cap: int | None = None  # None: take batches of any size; 0: refuse every batch


@dataclass
class ProxyStats:
    """What the proxy did, for assertions."""

    calls: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # by a message's first word, and "head"
    messages: Counter[int] = field(default_factory=Counter)  # by index into REFUSALS
    rate_limited: int = 0
    lagged: int = 0
    log_ranges: list[tuple[int, int]] = field(default_factory=list)
    # (first topic: one, a tuple of any of several, or None; range)
    topic_ranges: list[tuple[str | tuple[str, ...] | None, int, int]] = field(default_factory=list)
    numbered_blocks: int = 0  # eth_getBlockByNumber calls for a block by its number (not a tag)
    filtered_logs: int = 0  # log queries filtered on an indexed argument (a second topic)
    batches: int = 0  # batches taken
    batch_refusals: int = 0
    logs_returned: int = 0  # logs in the answers to eth_getLogs
    selectors: Counter[str] = field(default_factory=Counter)  # eth_call by 4-byte selector (0x hex)
    round_trips: Counter[str] = field(default_factory=Counter)  # requests asking for a method (a batch once)

    def as_json(self) -> dict[str, Any]:
        """The counters (not the log ranges) for ``GET /stats``."""
        return {"calls": dict(self.calls), "refusals": dict(self.refusals),
                "messages": {str(i): n for i, n in sorted(self.messages.items())},
                "rate_limited": self.rate_limited, "lagged": self.lagged,
                "log_queries": len(self.log_ranges), "batches": self.batches,
                "batch_refusals": self.batch_refusals}


class HostileRpc:
    """The proxy's state: upstream client, configuration, counters."""

    def __init__(self, upstream: str, config: ProxyConfig):
        self.upstream = upstream
        self.config = config
        self.stats = ProxyStats()
        self._http = httpx.Client(timeout=30)
        self._random = random.Random(config.seed)
        self._lock = threading.Lock()
        self._refusal = 0
        self._lag = 0
        self._lag_left = 0
        self._held: list[tuple[threading.Event, threading.Event]] = []  # (go, forwarded)
        self.url = ""

    def held(self) -> int:
        """How many sends are held now."""
        with self._lock:
            return len(self._held)

    def release_sends(self, timeout: float = 30) -> None:
        """Forward every held send, one at a time in arrival order (each answered before the next
        goes), and stop holding new ones."""
        with self._lock:
            self.config.hold_sends = False
            held, self._held = self._held, []
        for go, forwarded in held:
            go.set()
            if not forwarded.wait(timeout):
                raise TimeoutError("a held transaction was not forwarded")

    def _hold(self, call: dict[str, Any]) -> dict[str, Any]:
        go, forwarded = threading.Event(), threading.Event()
        with self._lock:
            self._held.append((go, forwarded))
        go.wait()
        try:
            return self._forward(call)
        finally:
            forwarded.set()

    def _forward(self, call: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self._http.post(self.upstream, json=call).json()
        return reply

    def _head(self) -> int:
        reply = self._forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []})
        return int(reply["result"], 16) - self._lag

    def _error(self, call: dict[str, Any], code: int, message: str) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": code, "message": message}}

    def handle_request(self, call: Any) -> tuple[int, dict[str, str], Any]:
        """(HTTP status, headers, JSON body) of one HTTP request: a batch or one call."""
        if isinstance(call, list):
            return self.handle_batch(call)
        with self._lock:
            self.stats.round_trips[str(call.get("method"))] += 1
        return self.handle(call)

    def handle(self, call: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        """(HTTP status, headers, JSON body) of one call."""
        method = str(call.get("method"))
        config = self.config
        with self._lock:
            self.stats.calls[method] += 1
            params = call.get("params") or [None]
            if method == "eth_getBlockByNumber" and str(params[0]).startswith("0x"):
                self.stats.numbered_blocks += 1
            if method == "eth_call" and isinstance(params[0], dict):
                self.stats.selectors[str(params[0].get("data") or params[0].get("input") or "")[:10]] += 1
            if config.down:
                return 503, {}, None
            forced = config.rate_limit_next > 0
            config.rate_limit_next -= 1 if forced else 0
            if forced or (config.rate_limit_share and self._random.random() < config.rate_limit_share):
                self.stats.rate_limited += 1
                return 429, {"Retry-After": config.retry_after}, self._error(
                    call, 429, "Your app has exceeded its compute units per second capacity.")
            if self._lag_left > 0:
                self._lag_left -= 1
                if self._lag_left == 0:
                    self._lag = 0
            elif config.lag_every and sum(self.stats.calls.values()) % config.lag_every == 0:
                self._lag, self._lag_left = self._random.randint(1, config.max_lag), config.lag_calls
                self.stats.lagged += 1
            lag = self._lag
        if method == "eth_blockNumber" and lag:
            return 200, {}, {"jsonrpc": "2.0", "id": call.get("id"), "result": hex(self._head())}
        if method == "eth_getLogs":
            refused = self._refuse_logs(call)
            if refused is not None:
                return 200, {}, refused
        if method == "eth_sendRawTransaction" and config.hold_sends:
            return 200, {}, self._hold(call)
        reply = self._forward(call)
        if method == "eth_getLogs" and isinstance(reply.get("result"), list):
            with self._lock:
                self.stats.logs_returned += len(reply["result"])
        return 200, {}, reply

    def handle_batch(self, calls: list[Any]) -> tuple[int, dict[str, str], Any]:
        """(HTTP status, headers, JSON body) of a batch: refused past ``batch_cap``, else each
        call handled as :meth:`handle` would, a failed one answered by an error item."""
        cap = self.config.batch_cap
        with self._lock:
            if self.config.down:
                return 503, {}, None
            if cap is not None and len(calls) > cap:
                self.stats.batch_refusals += 1
                return 200, {}, {"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32600, "message": f"batch of {len(calls)} requests exceeds the limit of {cap}"}}
            self.stats.batches += 1
            self.stats.round_trips.update({str(c.get("method")) for c in calls if isinstance(c, dict)})
        replies = []
        for call in calls:
            status, _headers, reply = self.handle(call)
            if status != 200:
                message = (reply or {}).get("error", {}).get("message", f"HTTP {status}")
                reply = self._error(call, status, message)
            replies.append(reply)
        return 200, {}, replies

    def _refuse_logs(self, call: dict[str, Any]) -> dict[str, Any] | None:
        query = call["params"][0]
        head = self._head()
        first = int(query.get("fromBlock", "0x0"), 16)
        last = head if query.get("toBlock", "latest") == "latest" else int(query["toBlock"], 16)
        topics = query.get("topics") or [None]
        with self._lock:
            self.stats.log_ranges.append((first, last))
            first_topic = tuple(topics[0]) if isinstance(topics[0], list) else topics[0]  # any of several
            self.stats.topic_ranges.append((first_topic, first, last))
            self.stats.filtered_logs += len(topics) > 1 and topics[1] is not None
            if last > head:
                self.stats.refusals["head"] += 1
                return self._error(call, -32000, HEAD_REFUSAL)
            cap = self.config.range_cap
            if cap is None or last - first + 1 <= cap:
                return None
            chosen = self.config.refusals or list(range(len(REFUSALS)))
            index = chosen[self._refusal % len(chosen)]
            template, code = REFUSALS[index]
            self._refusal += 1
            self.stats.refusals[template.split()[0]] += 1
            self.stats.messages[index] += 1
        return self._error(call, code, template.format(first=hex(first), last=hex(first + cap - 1), cap=cap))


def _handler(proxy: HostileRpc) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            call = json.loads(body)
            status, headers, reply = proxy.handle_request(call)
            out = json.dumps(reply).encode() if reply is not None else b"service unavailable"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json" if reply is not None else "text/plain")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self) -> None:
            with proxy._lock:
                out = json.dumps(proxy.stats.as_json()).encode()
            self.send_response(200 if self.path == "/stats" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def hostile_rpc(upstream: str, config: ProxyConfig | None = None, port: int = 0) -> Iterator[HostileRpc]:
    """Run the proxy in a thread on ``port`` (0: a free one); yield it (``.url``)."""
    proxy = HostileRpc(upstream, config or ProxyConfig())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_port}/v3/proxy-key"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    """Run the proxy as a process until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cap", type=int, default=10)
    parser.add_argument("--rate-limit-share", type=float, default=0.1)
    parser.add_argument("--lag-every", type=int, default=40, help="calls between head lags (0: never)")
    parser.add_argument("--max-lag", type=int, default=3, help="blocks a lagging head is behind")
    parser.add_argument("--retry-after", default="0", help="Retry-After of a 429, seconds")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    config = ProxyConfig(range_cap=args.cap, rate_limit_share=args.rate_limit_share, lag_every=args.lag_every,
                         max_lag=args.max_lag, retry_after=args.retry_after, seed=args.seed)
    with hostile_rpc(args.upstream, config, args.port) as proxy:
        print(proxy.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
