"""Decoding logs of the ShardKey contracts into :class:`ChainEvent` values.

Decoding is pure (``process_log`` on a known ABI); fetching logs lives in the watcher.
A log emitted by a watched contract that matches no known event raises
:class:`UndecodableLog`: agents stop loudly rather than skip what they cannot read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import MismatchedABI

from shardkey.chain.errors import UndecodableLog


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


class EventDecoder:
    """Maps (contract address, topic0) to the event ABI that decodes it."""

    def __init__(self, contracts: Mapping[str, Contract]):
        self._by_key: dict[tuple[str, bytes], tuple[str, Any]] = {}
        self.addresses = [to_checksum_address(c.address) for c in contracts.values()]
        for contract_name, contract in contracts.items():
            address = to_checksum_address(contract.address)
            for entry in contract.abi:
                if entry.get("type") != "event":
                    continue
                event = contract.events[entry["name"]]()
                topic = bytes(HexBytes(event.topic))
                self._by_key[(address, topic)] = (contract_name, event)

    def decode(self, log: Mapping[str, Any]) -> ChainEvent:
        """Decode one raw log; raise :class:`UndecodableLog` when it matches nothing."""
        address = to_checksum_address(log["address"])
        topics = log.get("topics") or []
        if not topics:
            raise UndecodableLog(f"log without topics from {address} in block "
                                 f"{log.get('blockNumber')}")
        key = (address, bytes(HexBytes(topics[0])))
        if key not in self._by_key:
            raise UndecodableLog(f"unknown event 0x{bytes(topics[0]).hex()} from {address} "
                                 f"in block {log.get('blockNumber')}")
        contract_name, event = self._by_key[key]
        try:
            decoded = event.process_log(log)
        except MismatchedABI as exc:
            raise UndecodableLog(f"cannot decode {event.event_name} from {address}: {exc}") from exc
        return ChainEvent(
            name=decoded["event"],
            args=dict(decoded["args"]),
            address=address,
            block_number=int(decoded["blockNumber"]),
            block_hash=bytes(decoded["blockHash"]),
            tx_hash=bytes(decoded["transactionHash"]),
            log_index=int(decoded["logIndex"]),
            contract=contract_name,
        )

    def decode_all(self, logs: Iterable[Mapping[str, Any]]) -> list[ChainEvent]:
        """Decode and order logs by (block, log index)."""
        return sorted((self.decode(log) for log in logs), key=lambda e: e.position)
