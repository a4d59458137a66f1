"""Decoding logs of the ShardKey contracts into :class:`ChainEvent` values.

Decoding is pure (:mod:`shardkey.chain.codec` on a known ABI, the values web3's
``process_log`` gives); fetching logs lives in the watcher.
A log emitted by a watched contract that matches no known event raises
:class:`UndecodableLog`: agents stop loudly rather than skip what they cannot read.
:meth:`EventDecoder.topics` names the ``topic0`` of events by name, so a watcher asks the
node for the events it handles only (the contracts are not upgradeable and the deployment
file fixes their addresses: a watched address emits the events of the ABI it was built from).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shardkey.chain.codec import ContractCodec, EventCodec, checksum
from shardkey.chain.errors import UndecodableLog
from shardkey.chain.rpc import data_bytes, quantity


@dataclass(frozen=True)
class ChainEvent:
    """One decoded event with its position in the chain."""

    name: str
    args: Mapping[str, Any]
    address: str
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    contract: str = field(default="")

    @property
    def position(self) -> tuple[int, int]:
        """(block, log index): the total order of events."""
        return (self.block_number, self.log_index)


class HasAbi(Protocol):
    """A contract as far as decoding its logs goes (ours, or web3's)."""

    @property
    def address(self) -> Any: ...

    @property
    def abi(self) -> Sequence[Mapping[str, Any]]: ...


class EventDecoder:
    """Maps (contract address, topic0) to the event codec that decodes it."""

    def __init__(self, contracts: Mapping[str, HasAbi]):
        self._by_key: dict[tuple[str, bytes], tuple[str, EventCodec]] = {}
        self._topics: dict[str, set[bytes]] = {}  # event name -> its topic0 in any watched contract
        self.addresses = [checksum(c.address) for c in contracts.values()]
        for contract_name, contract in contracts.items():
            address = checksum(contract.address)
            codecs = getattr(contract, "codec", None) or ContractCodec(contract.abi)
            for topic, codec in codecs.events.items():
                self._by_key[(address, topic)] = (contract_name, codec)
                self._topics.setdefault(codec.name, set()).add(topic)

    def topics(self, names: Iterable[str]) -> list[str]:
        """The ``topic0`` values (hex, sorted) of the events called ``names`` in the watched
        contracts: a log filter's first topic position, to read those events only. Raises
        ``ValueError`` for a name no watched contract emits (a typo would watch nothing)."""
        unknown = sorted(set(names) - set(self._topics))
        if unknown:
            raise ValueError(f"no watched contract emits {', '.join(unknown)}")
        return sorted({"0x" + topic.hex() for name in names for topic in self._topics[name]})

    def decode(self, log: Mapping[str, Any]) -> ChainEvent:
        """Decode one raw log; raise :class:`UndecodableLog` when it matches nothing."""
        address = checksum(log["address"])
        topics = [data_bytes(t) for t in log.get("topics") or []]
        if not topics:
            raise UndecodableLog(f"log without topics from {address} in block "
                                 f"{log.get('blockNumber')}")
        key = (address, topics[0])
        if key not in self._by_key:
            raise UndecodableLog(f"unknown event 0x{topics[0].hex()} from {address} "
                                 f"in block {log.get('blockNumber')}")
        contract_name, codec = self._by_key[key]
        try:
            args = codec.decode(topics, data_bytes(log["data"]))
        except ValueError as exc:
            raise UndecodableLog(f"cannot decode {codec.name} from {address}: {exc}") from exc
        return ChainEvent(
            name=codec.name,
            args=args,
            address=address,
            block_number=quantity(log["blockNumber"]),
            block_hash=data_bytes(log["blockHash"]),
            tx_hash=data_bytes(log["transactionHash"]),
            log_index=quantity(log["logIndex"]),
            contract=contract_name,
        )

    def decode_all(self, logs: Iterable[Mapping[str, Any]]) -> list[ChainEvent]:
        """Decode and order logs by (block, log index)."""
        return sorted((self.decode(log) for log in logs), key=lambda e: e.position)
