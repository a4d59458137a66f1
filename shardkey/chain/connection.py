"""A web3 connection with local signing, preflight, and custom-error decoding.

Every write goes through :meth:`ChainClient.send`: it estimates gas first (a call that
would revert raises :class:`TransactionReverted` naming the contract's custom error and
nothing is sent), signs locally with the given account, and waits for the receipt.
:meth:`ChainClient.submit` does the same without waiting, for services that keep many
transactions in flight (the KOS).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, TransactionNotFound
from web3.types import RPCEndpoint, TxReceipt

from shardkey.chain.artifacts import _abi_type, all_error_abis, load_artifact
from shardkey.chain.codec import ContractCodec
from shardkey.chain.errors import ChainError, TransactionReverted

GAS_MARGIN = 1.25


def redact_url(url: str) -> str:
    """``scheme://host:port`` of an RPC URL: paths, queries and credentials often hold API
    keys, and error messages end up in logs."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


@dataclass(frozen=True)
class SentTx:
    """A transaction sent and not yet known to be mined."""

    tx_hash: bytes
    fn: ContractFunction
    sender: str
    nonce: int
    sent_at: float  # time.monotonic() when sent

    @property
    def hex(self) -> str:
        """``0x`` + the transaction hash."""
        return "0x" + self.tx_hash.hex()


class ChainClient:
    """One RPC endpoint; thread-safe sending (nonces from the node's pending count)."""

    def __init__(self, rpc_url: str, *, timeout: float = 30.0, receipt_timeout: float = 120.0):
        self.rpc_url = rpc_url
        self.where = redact_url(rpc_url)
        provider = Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout})
        # web3 asks for eth_chainId several times per transaction; it never changes.
        provider.cacheable_requests = {RPCEndpoint("eth_chainId")}
        provider.cache_allowed_requests = True
        self.w3 = Web3(provider)
        self.receipt_timeout = receipt_timeout
        self._nonce_lock = threading.Lock()
        self._errors = _ErrorDecoder(self.w3)
        self._chain_id: int | None = None
        self._fees: tuple[dict[str, int], float] | None = None
        self._codecs: dict[str, ContractCodec] = {}

    @property
    def chain_id(self) -> int:
        """The chain id, read once."""
        if self._chain_id is None:
            self._chain_id = self._rpc(lambda: self.w3.eth.chain_id)
        return self._chain_id

    def contract(self, name: str, address: str) -> Contract:
        """A web3 contract object for one of the ShardKey contracts."""
        abi = load_artifact(name)["abi"]
        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    def latest_block(self) -> Any:
        """The latest block (policy time comes from here, never from the host clock)."""
        return self._rpc(lambda: self.w3.eth.get_block("latest"))

    def latest_timestamp(self) -> int:
        """``timestamp`` of the latest block."""
        return int(self.latest_block()["timestamp"])

    def block_number(self) -> int:
        """Number of the latest block (a bare ``eth_blockNumber``: agents ask it per request)."""
        return int(self.raw("eth_blockNumber", []), 16)

    def block_hash(self, number: int) -> bytes | None:
        """Hash of block ``number``; None when the chain has no such block (any more)."""
        block = self.raw("eth_getBlockByNumber", [hex(number), False])
        return None if block is None else bytes.fromhex(str(block["hash"])[2:])

    def logs(self, addresses: list[str], from_block: int, to_block: int) -> list[dict[str, Any]]:
        """``eth_getLogs`` over a block range, as the node returns them (hex strings)."""
        result = self.raw("eth_getLogs", [{"address": addresses, "fromBlock": hex(from_block),
                                           "toBlock": hex(to_block)}])
        return list(result)

    def raw(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call without web3's formatters (for the agents' polling loops,
        where those dominated an idle agent's CPU); returns the ``result`` as sent."""
        reply = self._rpc(lambda: self.w3.provider.make_request(RPCEndpoint(method), params))
        if "error" in reply or "result" not in reply:
            raise ChainError(f"RPC {self.where} failed: {method}: {reply.get('error')}")
        return reply["result"]

    def call(self, fn: ContractFunction, block: int | str = "latest") -> Any:
        """A read-only call; a revert raises :class:`TransactionReverted`."""
        try:
            return fn.call(block_identifier=block)
        except (ContractCustomError, ContractLogicError) as exc:
            raise self._errors.decode(exc) from None
        except (OSError, ValueError) as exc:
            raise ChainError(f"call to {self.where} failed: {exc}") from exc

    def read(self, contract: Contract, name: str, *args: Any, block: int | str = "latest") -> Any:
        """``name(*args)`` on ``contract`` as an ``eth_call``: the values :meth:`call` would
        give, through the lean :mod:`shardkey.chain.codec` (a revert raises
        :class:`TransactionReverted`)."""
        codec = self._codec(contract).function(name)
        try:
            data = codec.encode(args)
        except Exception as exc:  # eth_abi's encoding errors: a caller bug, named
            raise ChainError(f"{name}: arguments do not fit the ABI: {exc}") from None
        tag = hex(block) if isinstance(block, int) else block
        try:
            reply = self.w3.provider.make_request(
                RPCEndpoint("eth_call"), [{"to": contract.address, "data": "0x" + data.hex()}, tag])
        except (OSError, ValueError) as exc:
            raise ChainError(f"call to {self.where} failed: {exc}") from exc
        error = reply.get("error")
        if error:
            raise self._errors.decode_revert(error.get("data"), str(error.get("message", error)))
        try:
            return codec.decode(bytes.fromhex(str(reply["result"]).removeprefix("0x")))
        except Exception as exc:
            raise ChainError(f"{name}: undecodable return data from {self.where}: {exc}") from None

    def _codec(self, contract: Contract) -> ContractCodec:
        codec = self._codecs.get(contract.address)
        if codec is None:
            codec = self._codecs.setdefault(contract.address, ContractCodec(contract.abi))
        return codec

    def send(self, fn: ContractFunction, signer: LocalAccount, *, value: int = 0) -> TxReceipt:
        """Preflight, sign and send a transaction, wait for its receipt.

        Raises :class:`TransactionReverted` (nothing sent) when the call would revert, or
        when it reverted on chain after all (a race with another transaction).
        """
        return self.wait(self.submit(fn, signer, value=value))

    def submit(self, fn: ContractFunction, signer: LocalAccount, *, value: int = 0) -> SentTx:
        """Preflight, sign and send a transaction without waiting for it to be mined.

        Raises :class:`TransactionReverted` (nothing sent) when the call would revert.
        Several submissions from one account in a row get consecutive nonces, so they can
        all land in the same block.
        """
        sender = signer.address
        params: dict[str, Any] = {"from": sender, "value": value}
        try:
            gas = fn.estimate_gas(params)
        except (ContractCustomError, ContractLogicError) as exc:
            raise self._errors.decode(exc) from None
        except (OSError, ValueError) as exc:
            raise ChainError(f"gas estimate on {self.where} failed: {exc}") from exc
        with self._nonce_lock:
            nonce = self._next_nonce(sender)
            params.update({"gas": int(gas * GAS_MARGIN) + 10_000, "nonce": nonce,
                           "chainId": self.chain_id, **self._fee_params()})
            try:
                tx = fn.build_transaction(params)  # type: ignore[arg-type]
                signed = signer.sign_transaction(tx)
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:
                if isinstance(exc, ContractCustomError | ContractLogicError):
                    raise self._errors.decode(exc) from None
                raise ChainError(f"sending to {self.where} failed: {exc}") from exc
        return SentTx(bytes(tx_hash), fn, sender, nonce, time.monotonic())

    def wait(self, sent: SentTx) -> TxReceipt:
        """Block until a submitted transaction is mined; raise if it reverted."""
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                sent.tx_hash, timeout=self.receipt_timeout, poll_latency=0.05)
        except TimeExhausted as exc:
            raise ChainError(f"transaction 0x{sent.tx_hash.hex()} not mined in "
                             f"{self.receipt_timeout:.0f} s") from exc
        if receipt["status"] != 1:
            raise self._replay_failure(sent.fn, sent.sender, receipt)
        return receipt

    def receipt(self, sent: SentTx) -> TxReceipt | None:
        """The receipt of a submitted transaction, or None while it is not mined.

        Raises :class:`TransactionReverted` when it was mined and reverted.
        """
        try:
            receipt = self.w3.eth.get_transaction_receipt(sent.tx_hash)
        except TransactionNotFound:
            return None
        except (OSError, ValueError) as exc:
            raise ChainError(f"RPC {self.where} failed: {exc}") from exc
        if receipt["status"] != 1:
            raise self._replay_failure(sent.fn, sent.sender, receipt)
        return receipt

    def _fee_params(self) -> dict[str, int]:
        """EIP-1559 fees, re-read at most every 2 s (two RPC calls fewer per transaction)."""
        if self._fees is None or time.monotonic() - self._fees[1] > 2.0:
            base = int(self.latest_block().get("baseFeePerGas", 0))
            tip = int(self._rpc(lambda: self.w3.eth.max_priority_fee))
            self._fees = ({"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip},
                          time.monotonic())
        return dict(self._fees[0])

    def _next_nonce(self, sender: str) -> int:
        # Asked of the node for every transaction (under the lock, so concurrent sends from
        # this process get consecutive nonces: each is in the node's pool before the next
        # is numbered). A nonce remembered here would run ahead of the chain after a reorg
        # dropped this account's transactions, and every later one would wait forever.
        return int(self.raw("eth_getTransactionCount", [sender, "pending"]), 16)

    def _replay_failure(self, fn: ContractFunction, sender: str, receipt: TxReceipt) -> TransactionReverted:
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        try:
            fn.call({"from": sender}, block_identifier=receipt["blockNumber"] - 1)
        except (ContractCustomError, ContractLogicError) as exc:
            decoded = self._errors.decode(exc)
            decoded.tx = tx
            return decoded
        except Exception:  # noqa: S110 - the revert itself is what we report
            pass
        return TransactionReverted("UnknownRevert", {}, tx)

    def _rpc(self, thunk: Callable[[], Any]) -> Any:
        try:
            return thunk()
        except (OSError, ValueError) as exc:
            raise ChainError(f"RPC {self.where} failed: {exc}") from exc


class _ErrorDecoder:
    """Maps revert data to the ShardKey contracts' custom errors."""

    def __init__(self, w3: Web3):
        self._w3 = w3
        self._by_selector: dict[bytes, dict[str, Any]] = {}
        for entry in all_error_abis():
            types = [_abi_type(i) for i in entry["inputs"]]
            selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
            self._by_selector[selector] = entry

    def decode(self, exc: Exception) -> TransactionReverted:
        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        return self.decode_revert(data, getattr(exc, "message", None) or str(exc))

    def decode_revert(self, data: Any, message: str) -> TransactionReverted:
        """The custom error in revert ``data`` (``0x`` hex), else a plain revert with ``message``."""
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""
        entry = self._by_selector.get(raw[:4]) if len(raw) >= 4 else None
        if entry is None:
            return TransactionReverted("Revert", {"message": message})
        types = [_abi_type(i) for i in entry["inputs"]]
        values = self._w3.codec.decode(types, raw[4:]) if types else ()
        names = [i["name"] or f"arg{n}" for n, i in enumerate(entry["inputs"])]
        return TransactionReverted(entry["name"], dict(zip(names, values, strict=True)))
