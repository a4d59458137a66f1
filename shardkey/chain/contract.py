"""A deployed ShardKey contract without web3: calldata, log queries and receipts decoded
by :mod:`shardkey.chain.codec`.

``BoundContract.call(name, *args)`` gives a :class:`Call` that
:class:`~shardkey.chain.connection.ChainClient` can read (``eth_call``) or send as a
transaction. ``functions`` and ``events`` give web3's objects for the same contract, for
tools and tests; only they import web3.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eth_abi.abi import encode

from shardkey.chain.artifacts import load_artifact
from shardkey.chain.codec import ContractCodec, FunctionCodec, checksum
from shardkey.chain.events import ChainEvent, EventDecoder
from shardkey.chain.logs import Topics
from shardkey.chain.rpc import Receipt

if TYPE_CHECKING:
    from shardkey.chain.connection import ChainClient


@dataclass(frozen=True)
class Call:
    """One function of one contract with its arguments, encoded; or, with ``to`` None,
    the creation of a contract (``data`` is its bytecode and constructor arguments)."""

    to: str | None
    data: bytes
    function: FunctionCodec | None = None
    label: str = ""

    @property
    def name(self) -> str:
        """The function's name, or the label of a creation (for errors and logs)."""
        return self.function.name if self.function is not None else self.label


class BoundContract:
    """One ShardKey contract at one address, over one :class:`ChainClient`."""

    def __init__(self, client: ChainClient, name: str, address: str):
        self.client = client
        self.name = name
        self.address = checksum(address)
        self.abi: list[dict[str, Any]] = load_artifact(name)["abi"]
        self.codec = ContractCodec(self.abi)
        self._decoder = EventDecoder({name: self})

    def call(self, function: str, *args: Any) -> Call:
        """``function(*args)`` encoded for an ``eth_call`` or a transaction."""
        codec = self.codec.function(function)
        return Call(self.address, codec.encode(args), codec)

    def get_logs(self, event: str, from_block: int, to_block: int | str = "latest",
                 **indexed: Any) -> list[ChainEvent]:
        """Decoded ``event`` logs in a block range, optionally filtered on indexed arguments
        (``requestId=5``), in chain order; read in chunks the provider accepts
        (:meth:`~shardkey.chain.connection.ChainClient.logs`)."""
        codec = self.codec.event(event)
        topics: Topics = ["0x" + codec.topic.hex()]
        for name, types in codec.indexed:
            if name in indexed:
                topics.append("0x" + encode(types.types, [indexed.pop(name)]).hex())
            else:
                topics.append(None)
        if indexed:
            raise KeyError(f"{event} has no indexed argument(s) {', '.join(indexed)}")
        while topics[-1] is None:
            topics.pop()
        end = to_block if isinstance(to_block, int) else self.client.block_number()
        return self._decoder.decode_all(self.client.logs(self.address, from_block, end, topics))

    def process_receipt(self, event: str, receipt: Receipt) -> list[ChainEvent]:
        """The ``event`` logs this contract emitted in a transaction's receipt."""
        topic = self.codec.event(event).topic
        mine = [log for log in receipt["logs"]
                if checksum(log["address"]) == self.address and log.get("topics")
                and bytes.fromhex(str(log["topics"][0]).removeprefix("0x")) == topic]
        return self._decoder.decode_all(mine)

    # web3, for tools and tests ---------------------------------------------------------
    @cached_property
    def web3(self) -> Any:
        """web3's contract object for this contract (imports web3)."""
        return self.client.w3.eth.contract(address=self.address, abi=self.abi)

    @property
    def functions(self) -> Any:
        """web3's ``contract.functions`` (tools and tests)."""
        return self.web3.functions

    @property
    def events(self) -> Any:
        """web3's ``contract.events`` (tools and tests)."""
        return self.web3.events
