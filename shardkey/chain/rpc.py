"""JSON-RPC over HTTP, and the node's answers in the forms the rest of the code uses.

The services and the CLI talk to the node through this module alone. web3's provider
stack was the CLI's largest start-up cost (importing web3 took longer than storing a
1 MiB file) and ran every answer through formatters the hot paths do not need; web3 is
still available, lazily, as :attr:`shardkey.chain.connection.ChainClient.w3` for tools
and tests.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx

from shardkey.chain.codec import checksum
from shardkey.chain.errors import ChainError
from shardkey.netutil import tls_verify

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


class JsonRpc:
    """One endpoint; thread-safe (one pooled HTTP client shared by every thread)."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url
        self.where = redact_url(url)
        self._http = httpx.Client(timeout=timeout, verify=tls_verify(url),
                                  headers={"Content-Type": "application/json"},
                                  limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """The whole reply (``result`` or ``error``); transport failures raise :class:`ChainError`
        naming the endpoint without its path or credentials."""
        with self._ids_lock:
            request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        try:
            response = self._http.post(self.url, content=body)
        except httpx.TimeoutException:
            raise ChainError(f"RPC {self.where} failed: {method}: timed out") from None
        except httpx.HTTPError as exc:
            raise ChainError(f"RPC {self.where} failed: {method}: {exc.__class__.__name__}") from None
        try:
            reply = response.json()
        except ValueError:
            raise ChainError(f"RPC {self.where} failed: {method}: HTTP {response.status_code}, "
                             "not a JSON-RPC reply") from None
        if not isinstance(reply, dict):
            raise ChainError(f"RPC {self.where} failed: {method}: not a JSON-RPC reply")
        return reply

    def call(self, method: str, params: list[Any]) -> Any:
        """The ``result`` of one call; an error reply raises :class:`RpcError`."""
        reply = self.request(method, params)
        error = reply.get("error")
        if error is not None or "result" not in reply:
            raise RpcError(self.where, method, error if isinstance(error, dict) else {"message": error})
        return reply["result"]


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
