"""JSON-RPC over HTTP, and the node's answers in the forms the rest of the code uses.

The services and the CLI talk to the node through this module alone, over kept-alive
standard-library connections (:mod:`shardkey.httpconn`). web3's provider
stack was the CLI's largest start-up cost (importing web3 took longer than storing a
1 MiB file) and ran every answer through formatters the hot paths do not need; web3 is
still available, lazily, as :attr:`shardkey.chain.connection.ChainClient.w3` for tools
and tests.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shardkey.chain.codec import checksum
from shardkey.chain.errors import ChainError
from shardkey.chain.retry import RetryPolicy, Transient, classify
from shardkey.httpconn import STALE, ConnectionPool, Target, wire_connection
from shardkey.httpwire import WireConnection

log = logging.getLogger(__name__)

# A receipt or block as :func:`receipt_from_rpc` / :func:`block_from_rpc` give it.
Receipt = dict[str, Any]
Block = dict[str, Any]


def redact_url(url: str) -> str:
    """``scheme://host:port`` of an RPC URL: paths, queries and credentials often hold API
    keys, and error messages end up in logs."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class RpcError(ChainError):
    """The node answered a call with a JSON-RPC error (``code``, ``message``, ``data``)."""

    def __init__(self, where: str, method: str, error: dict[str, Any]):
        self.method = method
        self.code = error.get("code")
        self.rpc_message = str(error.get("message", ""))
        self.data = error.get("data")
        super().__init__(f"RPC {where} failed: {method}: {self.rpc_message or error}")

    @property
    def is_revert(self) -> bool:
        """Whether the error is the EVM reverting (as opposed to a refused transaction,
        an unknown method, a rate limit...)."""
        return self.code == 3 or "revert" in self.rpc_message.lower() or (
            isinstance(self.data, str) and self.data.startswith("0x") and len(self.data) >= 10)


POOL_SIZE = 16  # connections kept per endpoint (callers in flight at once beyond it wait)
BATCH_LIMIT = 100  # calls in one JSON-RPC batch at most


@dataclass
class _Endpoint:
    """One RPC URL, its connections, and until when it is benched (monotonic seconds)."""

    url: str
    where: str
    target: Target
    pool: ConnectionPool[WireConnection]
    benched_until: float = 0.0
    rate_limited: int = 0  # rate-limit answers in a row

    @classmethod
    def of(cls, url: str, timeout: float) -> _Endpoint:
        target = Target.parse(url)
        if target is None:
            raise ChainError(f"RPC URL {redact_url(url)} is not an http(s) URL")
        return cls(url, redact_url(url), target, ConnectionPool(target, url, timeout, POOL_SIZE,
                                                                  wire_connection))

    def post(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of one POST; a reused connection the server had closed is
        replaced once, since the request never reached it."""
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        if self.target.authorization is not None:
            headers["Authorization"] = self.target.authorization
        fresh = False
        while True:
            conn, reused = self.pool.take(fresh)
            keep = False
            try:
                status, answer_headers, data, keep = conn.exchange("POST", self.target.request_target,
                                                                   body, headers)
                return status, answer_headers, data
            except STALE:
                if not reused:
                    raise
                fresh = True
            finally:
                self.pool.give(conn, keep)


class JsonRpc:
    """One or several endpoints of one chain, with retries and fail-over; thread-safe.

    Every call goes to the first endpoint not benched. A transient failure
    (:func:`shardkey.chain.retry.classify`: rate limits, 5xx, connection errors) is logged at
    WARNING without a traceback and retried after the provider's hint or a back-off, within
    :class:`~shardkey.chain.retry.RetryPolicy`'s bounds; an endpoint that is down, answers
    5xx or keeps rate-limiting is benched for ``bench_for`` seconds when another one exists.
    Errors name endpoints as :func:`redact_url` gives them, never their path or credentials.
    """

    def __init__(self, url: str | Sequence[str], timeout: float = 30.0,
                 retry: RetryPolicy | None = None):
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ChainError("no RPC URL given")
        self.url = urls[0]
        self.urls = urls
        self.retry = retry or RetryPolicy()
        self._endpoints = [_Endpoint.of(u, timeout) for u in urls]
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.batches = True  # False once a provider refused a batch: later ones go call by call

    @property
    def where(self) -> str:
        """The endpoint in use, redacted (several: the first one with a count)."""
        first = self._endpoints[0].where
        return first if len(self._endpoints) == 1 else f"{first} (+{len(self._endpoints) - 1} more)"

    def close(self) -> None:
        """Close every endpoint's idle connections."""
        for endpoint in self._endpoints:
            endpoint.pool.close()

    def _pick(self) -> _Endpoint:
        now = self.retry.clock()
        with self._lock:
            ready = [e for e in self._endpoints if e.benched_until <= now]
            if ready:
                return ready[0]
            return min(self._endpoints, key=lambda e: e.benched_until)  # all benched: the soonest back

    def _bench(self, endpoint: _Endpoint, transient: Transient) -> None:
        if len(self._endpoints) < 2:
            return
        with self._lock:
            endpoint.benched_until = self.retry.clock() + self.retry.bench_for
        log.warning("RPC endpoint %s set aside for %.0f s (%s)", endpoint.where, self.retry.bench_for,
                    transient.kind)

    def _post(self, endpoint: _Endpoint, method: str, body: str) -> tuple[int, Any] | Transient:
        """(HTTP status, parsed JSON body or None) of one POST, or the transient failure."""
        where = endpoint.where
        try:
            status, headers, data = endpoint.post(body.encode())
        except TimeoutError:
            return Transient("timeout", f"RPC {where} failed: {method}: timed out", bench=True)
        except (OSError, http.client.HTTPException) as exc:
            return Transient("connection", f"RPC {where} failed: {method}: {exc.__class__.__name__}",
                             bench=True)
        try:
            reply: Any = json.loads(data)
        except ValueError:
            reply = None
        transient = classify(status, headers, reply)
        if transient is not None:
            return Transient(transient.kind, f"RPC {where} failed: {method}: {transient.detail}",
                             transient.hint, transient.bench)
        return status, reply

    def _attempt(self, endpoint: _Endpoint, method: str, body: str) -> dict[str, Any] | Transient:
        posted = self._post(endpoint, method, body)
        if isinstance(posted, Transient):
            return posted
        status, reply = posted
        if reply is None:
            raise ChainError(f"RPC {endpoint.where} failed: {method}: HTTP {status}, not a JSON-RPC reply")
        if not isinstance(reply, dict):
            raise ChainError(f"RPC {endpoint.where} failed: {method}: not a JSON-RPC reply")
        return reply

    def request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """The whole reply (``result`` or ``error``) after any retries; transport failures
        and exhausted retries raise :class:`ChainError` naming the endpoint without its
        path or credentials."""
        return self._request(method, params)[0]

    def _request(self, method: str, params: list[Any]) -> tuple[dict[str, Any], str]:
        with self._lock:
            request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        started = self.retry.clock()
        failures = 0
        while True:
            endpoint = self._pick()
            outcome = self._attempt(endpoint, method, body)
            if isinstance(outcome, dict):
                endpoint.rate_limited = 0
                return outcome, endpoint.where
            failures += 1
            endpoint.rate_limited = endpoint.rate_limited + 1 if outcome.kind.startswith(
                ("http_4", "rate")) else 0
            if outcome.bench or endpoint.rate_limited >= self.retry.bench_after:
                self._bench(endpoint, outcome)
            following = self._pick()  # another endpoint ready now: no need to wait
            ready = following is not endpoint and following.benched_until <= self.retry.clock()
            wait = 0.0 if ready else self.retry.delay(failures, outcome)
            if self.retry.gives_up(failures, started, wait):
                raise ChainError(f"{outcome.detail} (gave up after {failures} attempt(s))")
            log.warning("transient RPC failure, retrying in %.2f s: %s", wait, outcome.detail,
                        extra={"kind": outcome.kind, "attempt": failures})
            if wait > 0:
                self.retry.sleep(wait)

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """The whole replies of several calls, in order, sent as one JSON-RPC batch (one round
        trip instead of one per call).

        Batches are optional for providers: one that refuses them (an error, or anything but a
        list, for an answer), fails transiently, leaves an item out, or answers an item with an
        error other than a revert (a rate limit...), is asked again for what is missing one call
        at a time through :meth:`request` (its retries and fail-over), so a batch never fails
        where single calls would succeed. After a refusal, later batches go call by call from
        the start. More than :data:`BATCH_LIMIT` calls go as several batches (Erigon's
        default cap; geth's and Nethermind's are about 1000), so a burst of work does not
        trip a provider's cap and lose batching for good.
        """
        if len(calls) > BATCH_LIMIT:
            return [reply for start in range(0, len(calls), BATCH_LIMIT)
                    for reply in self.batch(calls[start:start + BATCH_LIMIT])]
        if len(calls) < 2 or not self.batches:
            return [self.request(method, params) for method, params in calls]
        with self._lock:
            ids = [next(self._ids) for _ in calls]
        body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": method, "params": params}
                           for i, (method, params) in zip(ids, calls, strict=True)])
        label = f"batch of {len(calls)} ({calls[0][0]}, ...)"
        posted = self._post(self._pick(), label, body)
        answered: dict[Any, dict[str, Any]] = {}
        if not isinstance(posted, Transient):
            status, reply = posted
            if isinstance(reply, list):
                answered = {item.get("id"): item for item in reply if isinstance(item, dict)}
            else:  # refused (or not understood): this provider takes one call at a time
                self.batches = False
                log.info("RPC %s does not take batched calls (HTTP %d); sending them one by one",
                         self._pick().where, status)
        return [item if (item := answered.get(i)) is not None and _settled(item)
                else self.request(method, params)
                for i, (method, params) in zip(ids, calls, strict=True)]

    def call(self, method: str, params: list[Any]) -> Any:
        """The ``result`` of one call; an error reply raises :class:`RpcError`."""
        reply, where = self._request(method, params)
        error = reply.get("error")
        if error is not None or "result" not in reply:
            raise RpcError(where, method, error if isinstance(error, dict) else {"message": error})
        return reply["result"]


def _settled(reply: dict[str, Any]) -> bool:
    """Whether one item of a batch answer is final: a result, or the EVM reverting. Any other
    error (a rate limit, a provider's own trouble) is asked again on its own."""
    if "result" in reply:
        return True
    error = reply.get("error")
    return isinstance(error, dict) and RpcError("", "", error).is_revert and classify(200, {}, reply) is None


def quantity(value: Any) -> int:
    """A JSON-RPC quantity (``0x`` hex) as an int (ints pass through)."""
    return int(value, 16) if isinstance(value, str) else int(value)


def data_bytes(value: Any) -> bytes:
    """JSON-RPC data (``0x`` hex) as bytes (bytes pass through)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def receipt_from_rpc(raw: dict[str, Any]) -> Receipt:
    """A receipt with ints and bytes where the node sends hex (``logs`` stay raw)."""
    def address(value: Any) -> str | None:
        return None if value is None else checksum(value)

    return {"transactionHash": data_bytes(raw["transactionHash"]),
            "blockHash": data_bytes(raw["blockHash"]),
            "blockNumber": quantity(raw["blockNumber"]),
            "status": quantity(raw.get("status", "0x1")),
            "gasUsed": quantity(raw["gasUsed"]),
            "from": address(raw.get("from")), "to": address(raw.get("to")),
            "contractAddress": address(raw.get("contractAddress")), "logs": list(raw.get("logs") or [])}


def block_from_rpc(raw: dict[str, Any]) -> Block:
    """A block header with ints and bytes where the node sends hex."""
    return {"number": quantity(raw["number"]), "timestamp": quantity(raw["timestamp"]),
            "hash": data_bytes(raw["hash"]), "baseFeePerGas": quantity(raw.get("baseFeePerGas", 0))}
