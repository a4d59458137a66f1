"""The chain connection: reads, local signing, preflight, and custom-error decoding.

Every write goes through :meth:`ChainClient.send`: it estimates gas first (a call that
would revert raises :class:`TransactionReverted` naming the contract's custom error and
nothing is sent), signs locally with the given account, and waits for the receipt.
:meth:`ChainClient.submit` does the same without waiting, for services that keep many
transactions in flight (the KOS). Calls are plain JSON-RPC (:mod:`shardkey.chain.rpc`)
with calldata from :mod:`shardkey.chain.codec`; web3 is imported only when :attr:`w3`
is used (tools and tests).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi.abi import decode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from shardkey.chain.artifacts import _abi_type, all_error_abis
from shardkey.chain.codec import FunctionCodec
from shardkey.chain.contract import BoundContract, Call
from shardkey.chain.errors import ChainError, TransactionReverted
from shardkey.chain.rpc import (
    Block,
    JsonRpc,
    Receipt,
    RpcError,
    block_from_rpc,
    data_bytes,
    quantity,
    receipt_from_rpc,
    redact_url,
)

GAS_MARGIN = 1.25
RECEIPT_POLL = 0.05  # seconds between receipt polls while waiting for a transaction

__all__ = ["GAS_MARGIN", "Call", "ChainClient", "Receipt", "SentTx", "redact_url"]


@dataclass(frozen=True)
class SentTx:
    """A transaction sent and not yet known to be mined."""

    tx_hash: bytes
    fn: Call
    sender: str
    nonce: int
    sent_at: float  # time.monotonic() when sent

    @property
    def hex(self) -> str:
        """``0x`` + the transaction hash."""
        return "0x" + self.tx_hash.hex()


def as_call(fn: Any) -> Call:
    """A :class:`Call`, or web3's ``ContractFunction`` (tests, tools) turned into one."""
    if isinstance(fn, Call):
        return fn
    codec = FunctionCodec(fn.abi)
    return Call(str(fn.address), codec.encode(fn.args), codec)


def _target(call: Call) -> dict[str, str]:
    """The ``to`` of a transaction or call; none for a contract creation."""
    return {} if call.to is None else {"to": call.to}


class ChainClient:
    """One RPC endpoint; thread-safe sending (nonces from the node's pending count)."""

    def __init__(self, rpc_url: str, *, timeout: float = 30.0, receipt_timeout: float = 120.0):
        self.rpc_url = rpc_url
        self.where = redact_url(rpc_url)
        self.timeout = timeout
        self.rpc = JsonRpc(rpc_url, timeout)
        self.receipt_timeout = receipt_timeout
        self._nonce_lock = threading.Lock()
        self._errors = _ErrorDecoder()
        self._chain_id: int | None = None
        self._fees: tuple[dict[str, int], float] | None = None

    @cached_property
    def w3(self) -> Any:
        """A web3 instance on the same endpoint, for tools and tests (imports web3)."""
        from web3 import Web3
        return Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": self.timeout}))

    @property
    def chain_id(self) -> int:
        """The chain id, read once."""
        if self._chain_id is None:
            self._chain_id = quantity(self.raw("eth_chainId", []))
        return self._chain_id

    def contract(self, name: str, address: str) -> BoundContract:
        """One of the ShardKey contracts at ``address``."""
        return BoundContract(self, name, address)

    def latest_block(self) -> Block:
        """The latest block (policy time comes from here, never from the host clock)."""
        return block_from_rpc(self.raw("eth_getBlockByNumber", ["latest", False]))

    def latest_timestamp(self) -> int:
        """``timestamp`` of the latest block."""
        return int(self.latest_block()["timestamp"])

    def block_number(self) -> int:
        """Number of the latest block."""
        return quantity(self.raw("eth_blockNumber", []))

    def block_hash(self, number: int) -> bytes | None:
        """Hash of block ``number``; None when the chain has no such block (any more)."""
        block = self.raw("eth_getBlockByNumber", [hex(number), False])
        return None if block is None else data_bytes(block["hash"])

    def logs(self, addresses: list[str], from_block: int, to_block: int) -> list[dict[str, Any]]:
        """``eth_getLogs`` over a block range, as the node returns them (hex strings)."""
        result = self.raw("eth_getLogs", [{"address": addresses, "fromBlock": hex(from_block),
                                           "toBlock": hex(to_block)}])
        return list(result)

    def code(self, address: str) -> bytes:
        """Deployed code at ``address`` (empty for an externally owned account)."""
        return data_bytes(self.raw("eth_getCode", [address, "latest"]))

    def raw(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call; returns the ``result`` as the node sent it."""
        return self.rpc.call(method, params)

    def call(self, fn: Call | Any, block: int | str = "latest") -> Any:
        """A read-only call (a :class:`Call`, or web3's ``ContractFunction``); a revert raises
        :class:`TransactionReverted`."""
        call = as_call(fn)
        if call.function is None:
            raise ChainError(f"{call.name}: not a function call")
        tag = hex(block) if isinstance(block, int) else block
        try:
            result = self.raw("eth_call", [{"to": call.to, "data": "0x" + call.data.hex()}, tag])
        except RpcError as exc:
            raise self._errors.decode_revert(exc.data, exc.rpc_message) from None
        try:
            return call.function.decode(data_bytes(result))
        except Exception as exc:  # eth_abi's decoding errors
            raise ChainError(f"{call.name}: undecodable return data from {self.where}: {exc}") from None

    def read(self, contract: BoundContract, name: str, *args: Any, block: int | str = "latest") -> Any:
        """``name(*args)`` on ``contract`` as an ``eth_call`` (a revert raises
        :class:`TransactionReverted`)."""
        try:
            call = contract.call(name, *args)
        except Exception as exc:  # eth_abi's encoding errors: a caller bug, named
            raise ChainError(f"{name}: arguments do not fit the ABI: {exc}") from None
        return self.call(call, block)

    def send(self, fn: Call | Any, signer: LocalAccount, *, value: int = 0) -> Receipt:
        """Preflight, sign and send a transaction, wait for its receipt.

        Raises :class:`TransactionReverted` (nothing sent) when the call would revert, or
        when it reverted on chain after all (a race with another transaction).
        """
        return self.wait(self.submit(fn, signer, value=value))

    def submit(self, fn: Call | Any, signer: LocalAccount, *, value: int = 0) -> SentTx:
        """Preflight, sign and send a transaction without waiting for it to be mined.

        Raises :class:`TransactionReverted` (nothing sent) when the call would revert.
        Several submissions from one account in a row get consecutive nonces, so they can
        all land in the same block.
        """
        call = as_call(fn)
        sender = signer.address
        request = {"from": sender, **_target(call), "data": "0x" + call.data.hex(), "value": hex(value)}
        try:
            gas = quantity(self.raw("eth_estimateGas", [request]))
        except RpcError as exc:
            if exc.is_revert:
                raise self._errors.decode_revert(exc.data, exc.rpc_message) from None
            raise ChainError(f"gas estimate of {call.name} on {self.where} failed: "
                             f"{exc.rpc_message}") from None
        with self._nonce_lock:
            nonce = self._next_nonce(sender)
            tx: dict[str, Any] = {**_target(call), "data": call.data, "value": value, "nonce": nonce,
                  "gas": int(gas * GAS_MARGIN) + 10_000, "chainId": self.chain_id, "type": 2,
                  **self._fee_params()}
            signed = signer.sign_transaction(tx)
            try:
                raw_tx = "0x" + signed.raw_transaction.hex()
                tx_hash = data_bytes(self.raw("eth_sendRawTransaction", [raw_tx]))
            except RpcError as exc:
                if exc.is_revert:
                    raise self._errors.decode_revert(exc.data, exc.rpc_message) from None
                raise ChainError(f"sending {call.name} to {self.where} failed: {exc.rpc_message}") from None
        return SentTx(tx_hash, call, sender, nonce, time.monotonic())

    def wait(self, sent: SentTx) -> Receipt:
        """Block until a submitted transaction is mined; raise if it reverted."""
        deadline = time.monotonic() + self.receipt_timeout
        while (receipt := self.receipt(sent)) is None:
            if time.monotonic() > deadline:
                raise ChainError(f"transaction {sent.hex} not mined in {self.receipt_timeout:.0f} s")
            time.sleep(RECEIPT_POLL)
        return receipt

    def receipt(self, sent: SentTx) -> Receipt | None:
        """The receipt of a submitted transaction, or None while it is not mined.

        Raises :class:`TransactionReverted` when it was mined and reverted.
        """
        raw = self.raw("eth_getTransactionReceipt", [sent.hex])
        if raw is None or raw.get("blockNumber") is None:
            return None
        receipt = receipt_from_rpc(raw)
        if receipt["status"] != 1:
            raise self._replay_failure(sent.fn, sent.sender, receipt)
        return receipt

    def _fee_params(self) -> dict[str, int]:
        """EIP-1559 fees, re-read at most every 2 s (two RPC calls fewer per transaction)."""
        if self._fees is None or time.monotonic() - self._fees[1] > 2.0:
            base = int(self.latest_block()["baseFeePerGas"])
            tip = quantity(self.raw("eth_maxPriorityFeePerGas", []))
            self._fees = ({"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip},
                          time.monotonic())
        return dict(self._fees[0])

    def _next_nonce(self, sender: str) -> int:
        # Asked of the node for every transaction (under the lock, so concurrent sends from
        # this process get consecutive nonces: each is in the node's pool before the next
        # is numbered). A nonce remembered here would run ahead of the chain after a reorg
        # dropped this account's transactions, and every later one would wait forever.
        return quantity(self.raw("eth_getTransactionCount", [sender, "pending"]))

    def _replay_failure(self, call: Call, sender: str, receipt: Receipt) -> TransactionReverted:
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        try:
            self.raw("eth_call", [{"from": sender, **_target(call), "data": "0x" + call.data.hex()},
                                  hex(receipt["blockNumber"] - 1)])
        except RpcError as exc:
            decoded = self._errors.decode_revert(exc.data, exc.rpc_message)
            decoded.tx = tx
            return decoded
        except ChainError:  # the revert itself is what we report
            pass
        return TransactionReverted("UnknownRevert", {}, tx)


class _ErrorDecoder:
    """Maps revert data to the ShardKey contracts' custom errors."""

    def __init__(self) -> None:
        self._by_selector: dict[bytes, dict[str, Any]] = {}
        for entry in all_error_abis():
            types = [_abi_type(i) for i in entry["inputs"]]
            selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
            self._by_selector[selector] = entry

    def decode_revert(self, data: Any, message: str) -> TransactionReverted:
        """The custom error in revert ``data`` (``0x`` hex), else a plain revert with ``message``."""
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""
        entry = self._by_selector.get(raw[:4]) if len(raw) >= 4 else None
        if entry is None:
            return TransactionReverted("Revert", {"message": message})
        types = [_abi_type(i) for i in entry["inputs"]]
        values = decode(types, raw[4:]) if types else ()
        names = [i["name"] or f"arg{n}" for n, i in enumerate(entry["inputs"])]
        return TransactionReverted(entry["name"], dict(zip(names, values, strict=True)))
