"""Lean ABI encoding and decoding for the hot paths: contract reads and event logs.

web3's contract objects re-validate the whole ABI (a keccak per function) every time a
call is built and run every value through several layers of formatters; the KOS spent
most of its CPU there under a burst of requests. These codecs precompute selectors,
topics and ``eth_abi`` types once per contract and give the same values web3 returns:
single outputs unwrapped, addresses checksummed at any depth, structs as tuples in call
results and as dicts of their components in event arguments. A test compares them with
web3's own decoding on real logs and calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from shardkey.chain.artifacts import _abi_type

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@lru_cache(maxsize=4096)
def checksum(address: str) -> str:
    """EIP-55 checksum of an address (cached: the same few addresses recur all the time)."""
    return str(to_checksum_address(address))


def _converter(param: Mapping[str, Any], kind: str, named: bool) -> Any:
    """A function turning an ``eth_abi`` value of ``kind`` into web3's form: addresses
    checksummed, structs as dicts of their components when ``named`` (events) or tuples
    (calls). None when the value needs no change."""
    if kind.endswith("]"):
        inner = _converter(param, kind[:kind.rindex("[")], named)
        return None if inner is None else (lambda v: tuple(inner(x) for x in v))
    if kind == "tuple":
        components = param["components"]
        parts = [_converter(c, c["type"], named) for c in components]
        if named:
            names = [c["name"] for c in components]
            return lambda v: {n: x if p is None else p(x) for n, p, x in zip(names, parts, v, strict=True)}
        if all(p is None for p in parts):
            return None
        return lambda v: tuple(x if p is None else p(x) for p, x in zip(parts, v, strict=True))
    return checksum if kind == "address" else None


class _Types:
    """A list of ABI parameters: their ``eth_abi`` types and converters to web3's form."""

    def __init__(self, params: Sequence[Mapping[str, Any]], *, named: bool = False):
        self.types = [_abi_type(dict(p)) for p in params]
        self._converters = [_converter(p, p["type"], named) for p in params]

    def decode(self, data: bytes) -> tuple[Any, ...]:
        values = decode(self.types, data)
        return tuple(v if c is None else c(v) for c, v in zip(self._converters, values, strict=True))


class FunctionCodec:
    """Calldata for one function and the decoding of its return data."""

    def __init__(self, entry: Mapping[str, Any]):
        self.name: str = entry["name"]
        self.inputs = _Types(entry.get("inputs", []))
        self.outputs = _Types(entry.get("outputs", []))
        self.selector = keccak(text=f"{self.name}({','.join(self.inputs.types)})")[:4]

    def encode(self, args: Sequence[Any]) -> bytes:
        """Selector plus ABI-encoded arguments."""
        return self.selector + encode(self.inputs.types, list(args))

    def decode(self, data: bytes) -> Any:
        """The return value as web3's ``call()`` gives it (one output: the value itself)."""
        values = self.outputs.decode(data)
        return values[0] if len(values) == 1 else list(values)


class EventCodec:
    """Decodes the topics and data of one event."""

    def __init__(self, entry: Mapping[str, Any]):
        self.name: str = entry["name"]
        inputs = entry.get("inputs", [])
        self.indexed = [(p["name"], _Types([p], named=True)) for p in inputs if p.get("indexed")]
        self.data = _Types([p for p in inputs if not p.get("indexed")], named=True)
        self.data_names = [p["name"] for p in inputs if not p.get("indexed")]
        self.order = [p["name"] for p in inputs]
        signature = f"{self.name}({','.join(_abi_type(dict(p)) for p in inputs)})"
        self.topic = keccak(text=signature)

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """Event arguments by name; raises ``ValueError`` when topics or data do not fit."""
        if len(topics) != len(self.indexed) + 1:
            raise ValueError(f"{self.name}: {len(topics) - 1} indexed topics, "
                             f"expected {len(self.indexed)}")
        args: dict[str, Any] = {}
        for (name, types), topic in zip(self.indexed, topics[1:], strict=True):
            dynamic = types.types[0] in ("bytes", "string") or types.types[0].endswith("]") \
                or types.types[0].startswith("(")
            args[name] = bytes(topic) if dynamic else types.decode(bytes(topic))[0]
        try:
            values = self.data.decode(data)
        except Exception as exc:  # eth_abi raises several decoding error types
            raise ValueError(f"{self.name}: undecodable data: {exc}") from exc
        args.update(zip(self.data_names, values, strict=True))
        return {name: args[name] for name in self.order}


class ContractCodec:
    """Every function and event codec of one contract ABI, built once."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]):
        self.functions: dict[str, FunctionCodec] = {}
        self.events: dict[bytes, EventCodec] = {}
        overloaded: set[str] = set()
        for entry in abi:
            if entry.get("type") == "function":
                if entry["name"] in self.functions:
                    overloaded.add(entry["name"])
                self.functions[entry["name"]] = FunctionCodec(entry)
            elif entry.get("type") == "event" and not entry.get("anonymous"):
                codec = EventCodec(entry)
                self.events[codec.topic] = codec
        for name in overloaded:  # ambiguous by name: callers must use web3 for these
            del self.functions[name]

    def function(self, name: str) -> FunctionCodec:
        """The codec of a (non-overloaded) function; ``KeyError`` when there is none."""
        return self.functions[name]

    def event(self, name: str) -> EventCodec:
        """The codec of an event by name; ``KeyError`` when there is none."""
        for codec in self.events.values():
            if codec.name == name:
                return codec
        raise KeyError(f"no event {name!r} in this ABI")
