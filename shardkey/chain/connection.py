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

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eth_abi.abi import decode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from shardkey.chain.artifacts import _abi_type, all_error_abis
from shardkey.chain.codec import FunctionCodec
from shardkey.chain.contract import BoundContract, Call
from shardkey.chain.errors import ChainError, TransactionReverted
from shardkey.chain.fees import FeeCeilingError, bumped_fees, initial_fees, max_fee_per_gas
from shardkey.chain.logs import ProviderBehind, RangeAdapter, Topics, log_filter, scan
from shardkey.chain.retry import RetryPolicy
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
from shardkey.service.loop import Backoff

GAS_MARGIN = 1.25
# Seconds between receipt polls while waiting for a transaction: 5 ms at first, doubling to
# 50 ms. A node that mines on arrival (a devnet) has the receipt a few ms after the send, and a
# flat 50 ms was most of the wait for a CLI's last transaction; later polls stay 50 ms apart.
RECEIPT_POLLS = Backoff(base=0.005, cap=0.05)
ALREADY_KNOWN = ("already known", "known transaction", "already imported")

log = logging.getLogger(__name__)

__all__ = ["GAS_MARGIN", "Call", "ChainClient", "FeeCeilingError", "Receipt", "SentTx", "redact_url"]


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


@dataclass
class _Pending:
    """What is needed to replace a sent transaction: its fields, signer and every hash sent
    with its nonce (the first one and each replacement)."""

    tx: dict[str, Any]
    signer: LocalAccount
    hashes: list[bytes]
    last_sent: float
    first_sent: float = field(default=0.0)


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
    """One chain over one or several RPC URLs (fail-over, retries: :class:`JsonRpc`);
    thread-safe sending (nonces from the node's pending count).

    ``max_fee_gwei`` caps the EIP-1559 ``maxFeePerGas`` of every transaction (None: no
    cap); a transaction not mined ``replace_after`` seconds after it was sent is sent again
    with the same nonce and fees raised by 12.5 % (what nodes require of a replacement), up
    to the cap; :meth:`receipt` then finds whichever of them was mined.
    """

    def __init__(self, rpc_url: str | Sequence[str], *, timeout: float = 30.0,
                 receipt_timeout: float = 120.0, max_fee_gwei: float | None = None,
                 replace_after: float | None = None, retry: RetryPolicy | None = None):
        self.rpc_urls = [rpc_url] if isinstance(rpc_url, str) else list(rpc_url)
        self.rpc = JsonRpc(self.rpc_urls, timeout, retry)
        self.rpc_url = self.rpc.url
        self.where = self.rpc.where
        self.timeout = timeout
        self.receipt_timeout = receipt_timeout
        self.max_fee_wei = None if max_fee_gwei is None else int(max_fee_gwei * 10**9)
        self.replace_after = replace_after if replace_after is not None else min(60.0, receipt_timeout / 3)
        self.log_range = RangeAdapter()
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._pending_lock = threading.Lock()
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

    def logs(self, addresses: str | list[str], from_block: int, to_block: int,
             topics: Topics | None = None) -> list[dict[str, Any]]:
        """``eth_getLogs`` over a block range in chunks the provider accepts, as the node
        returns them (hex strings), in chain order.

        A provider whose head lags behind ``to_block`` (another endpoint, or this one a moment
        ago, saw it) is waited for within the RPC retry budget, resuming after the last chunk
        read: a one-shot look-up has no later poll to catch up in (the watcher, which has,
        uses :meth:`scan_logs` and gets :class:`ProviderBehind`).
        """
        found: list[dict[str, Any]] = []
        position, lagged, started = from_block, 0, self.rpc.retry.clock()
        policy = self.rpc.retry
        while True:
            try:
                for _first, last, logs in self.scan_logs(addresses, position, to_block, topics):
                    found.extend(logs)
                    position = last + 1
            except ProviderBehind:
                pass
            if position > to_block:
                return found
            # the provider's head is behind `position` (scan refused, or cut the range at it)
            lagged += 1
            wait = policy.backoff.delay(lagged)
            if policy.gives_up(lagged, started, wait):
                raise ChainError(f"the provider's head stayed behind block {position} for "
                                 f"{policy.clock() - started:.1f} s") from None
            log.warning("provider head lags behind block %d: waiting %.2f s", position, wait)
            policy.sleep(wait)

    def scan_logs(self, addresses: str | list[str], from_block: int, to_block: int,
                  topics: Topics | None = None
                  ) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
        """``(first, last, logs)`` chunks covering the range in order (:func:`shardkey.chain.logs.scan`)."""
        def fetch(first: int, last: int) -> list[dict[str, Any]]:
            return list(self.raw("eth_getLogs", [log_filter(addresses, first, last, topics)]))

        return scan(fetch, from_block, to_block, self.log_range, self.block_number)

    def blocks_at(self, timestamp: int, low: int) -> tuple[int, int]:
        """The blocks from ``low`` on whose timestamp is ``timestamp`` (where a transaction
        stamped with it was mined: a look-up reads these, not the whole history).

        The search gallops back from the head before it bisects: what is looked up is mostly
        recent (a request made seconds ago, read by its holders and its requester), found in
        a handful of reads instead of two bisections of the whole history; an old timestamp
        costs about what bisecting did. Each block's timestamp is read once per call.
        """
        latest = self.block_number()
        stamps: dict[int, int] = {}

        def stamp(number: int) -> int:
            if number not in stamps:
                block = self.raw("eth_getBlockByNumber", [hex(number), False])
                if block is None:
                    raise ChainError(f"block {number} is gone (reorg?)")
                stamps[number] = quantity(block["timestamp"])
            return stamps[number]

        first = _first_block_after(stamp, timestamp - 1, low, latest)
        last = _first_block_after(stamp, timestamp, first, latest) - 1
        return first, max(first, last)

    def code(self, address: str) -> bytes:
        """Deployed code at ``address`` (empty for an externally owned account)."""
        return data_bytes(self.raw("eth_getCode", [address, "latest"]))

    def raw(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call; returns the ``result`` as the node sent it."""
        return self.rpc.call(method, params)

    def call(self, fn: Call | Any, block: int | str = "latest") -> Any:
        """A read-only call (a :class:`Call`, or web3's ``ContractFunction``); a revert raises
        :class:`TransactionReverted`."""
        return self.call_many([as_call(fn)], block)[0]

    def call_many(self, calls: Sequence[Call], block: int | str = "latest") -> list[Any]:
        """Several read-only calls at one block in one round trip where the provider takes
        batched calls (:meth:`JsonRpc.batch`; else one call each), decoded in order as
        :meth:`call` decodes them; a revert raises :class:`TransactionReverted`."""
        for call in calls:
            if call.function is None:
                raise ChainError(f"{call.name}: not a function call")
        tag = hex(block) if isinstance(block, int) else block
        replies = self.rpc.batch([("eth_call", [{"to": c.to, "data": "0x" + c.data.hex()}, tag])
                                  for c in calls])
        return [self._decoded(call, reply) for call, reply in zip(calls, replies, strict=True)]

    def _decoded(self, call: Call, reply: dict[str, Any]) -> Any:
        error = reply.get("error")
        if error is not None or "result" not in reply:
            failed = RpcError(self.where, "eth_call",
                              error if isinstance(error, dict) else {"message": error})
            raise self._errors.decode_revert(failed.data, failed.rpc_message)
        assert call.function is not None  # checked by call_many
        try:
            return call.function.decode(data_bytes(reply["result"]))
        except Exception as exc:  # eth_abi's decoding errors
            raise ChainError(f"{call.name}: undecodable return data from {self.where}: {exc}") from None

    def read(self, contract: BoundContract, name: str, *args: Any, block: int | str = "latest") -> Any:
        """``name(*args)`` on ``contract`` as an ``eth_call`` (a revert raises
        :class:`TransactionReverted`)."""
        return self.read_many(contract, name, [args], block=block)[0]

    def read_many(self, contract: BoundContract, name: str, arg_lists: Sequence[Sequence[Any]],
                  block: int | str = "latest") -> list[Any]:
        """``name(*args)`` for each of ``arg_lists``, in one round trip where the provider takes
        batches (:meth:`call_many`)."""
        try:
            calls = [contract.call(name, *args) for args in arg_lists]
        except Exception as exc:  # eth_abi's encoding errors: a caller bug, named
            raise ChainError(f"{name}: arguments do not fit the ABI: {exc}") from None
        return self.call_many(calls, block)

    def send(self, fn: Call | Any, signer: LocalAccount, *, value: int = 0) -> Receipt:
        """Preflight, sign and send a transaction, wait for its receipt.

        Raises :class:`TransactionReverted` (nothing sent) when the call would revert, or
        when it reverted on chain after all (a race with another transaction).
        """
        return self.wait(self.submit(fn, signer, value=value))

    def submit(self, fn: Call | Any, signer: LocalAccount, *, value: int = 0, extra_gas: int = 0) -> SentTx:
        """Preflight, sign and send a transaction without waiting for it to be mined.

        Raises :class:`TransactionReverted` (nothing sent) when the call would revert.
        Several submissions from one account in a row get consecutive nonces, so they can
        all land in the same block. ``extra_gas`` raises the limit above the estimate for a
        call whose cost depends on transactions that may land before it (only gas used is paid).
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
        fees = self._fee_params()
        with self._nonce_lock:
            nonce = self._next_nonce(sender)
            limit = int(gas * GAS_MARGIN) + 10_000 + extra_gas
            tx: dict[str, Any] = {**_target(call), "data": call.data, "value": value, "nonce": nonce,
                  "gas": limit, "chainId": self.chain_id, "type": 2, **fees}
            tx_hash = self._broadcast(call, tx, signer)
        now = time.monotonic()
        with self._pending_lock:
            self._forget_stale(now)
            self._pending[(sender, nonce)] = _Pending(tx, signer, [tx_hash], now, now)
        return SentTx(tx_hash, call, sender, nonce, now)

    def _broadcast(self, call: Call, tx: dict[str, Any], signer: LocalAccount) -> bytes:
        """Sign and send ``tx``; its hash (also when a retry finds the node already has it)."""
        signed = signer.sign_transaction(tx)
        try:
            return data_bytes(self.raw("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))
        except RpcError as exc:
            if exc.is_revert:
                raise self._errors.decode_revert(exc.data, exc.rpc_message) from None
            if any(words in exc.rpc_message.lower() for words in ALREADY_KNOWN):
                return bytes(signed.hash)
            raise ChainError(f"sending {call.name} to {self.where} failed: {exc.rpc_message}") from None

    def wait(self, sent: SentTx) -> Receipt:
        """Block until a submitted transaction is mined; raise if it reverted."""
        outcome = self.wait_many([sent])[0]
        if isinstance(outcome, TransactionReverted):
            raise outcome
        return outcome

    def wait_many(self, sents: Sequence[SentTx]) -> list[Receipt | TransactionReverted]:
        """Block until every submitted transaction is mined: each one's receipt, or the
        :class:`TransactionReverted` it ended with, in order. The ones not yet mined are
        asked for together (:meth:`receipts`) at each poll. :class:`ChainError` when one is
        not mined within ``receipt_timeout``."""
        deadline = time.monotonic() + self.receipt_timeout
        outcomes: dict[int, Receipt | TransactionReverted] = {}
        polls = 0
        while len(outcomes) < len(sents):
            left = [i for i in range(len(sents)) if i not in outcomes]
            for i, got in zip(left, self.receipts([sents[i] for i in left]), strict=True):
                if got is not None:
                    outcomes[i] = got
            if len(outcomes) == len(sents):
                break
            if time.monotonic() > deadline:
                late = next(sents[i] for i in range(len(sents)) if i not in outcomes)
                raise ChainError(f"transaction {late.hex} not mined in {self.receipt_timeout:.0f} s")
            polls += 1
            time.sleep(RECEIPT_POLLS.delay(polls))
        return [outcomes[i] for i in range(len(sents))]

    def receipt(self, sent: SentTx) -> Receipt | None:
        """The receipt of a submitted transaction, or None while it is not mined.

        Raises :class:`TransactionReverted` when it was mined and reverted.
        """
        outcome = self.receipts([sent])[0]
        if isinstance(outcome, TransactionReverted):
            raise outcome
        return outcome

    def receipts(self, sents: Sequence[SentTx]) -> list[Receipt | TransactionReverted | None]:
        """What became of several submitted transactions, asked in one round trip (a batch
        of every hash each was sent under, replacements included), in order: its receipt,
        the :class:`TransactionReverted` it ended with, or None while it is not mined (a
        transaction not mined within ``replace_after`` is replaced, as :meth:`receipt` does)."""
        with self._pending_lock:
            pendings = [self._pending.get((sent.sender, sent.nonce)) for sent in sents]
            hashes = [list(p.hashes) if p is not None else [sent.tx_hash]
                      for sent, p in zip(sents, pendings, strict=True)]
        asked = [h for tx_hashes in hashes for h in reversed(tx_hashes)]  # newest replacement first
        replies = iter(self.rpc.batch([("eth_getTransactionReceipt", ["0x" + h.hex()]) for h in asked]))
        outcomes: list[Receipt | TransactionReverted | None] = []
        for sent, pending, tx_hashes in zip(sents, pendings, hashes, strict=True):
            mined = [raw for raw in (self._receipt_result(next(replies)) for _ in tx_hashes)
                     if raw is not None and raw.get("blockNumber") is not None]
            outcomes.append(self._settled_as(sent, pending, mined[0] if mined else None))
        return outcomes

    def _receipt_result(self, reply: dict[str, Any]) -> dict[str, Any] | None:
        error = reply.get("error")
        if error is not None or "result" not in reply:
            raise RpcError(self.where, "eth_getTransactionReceipt",
                           error if isinstance(error, dict) else {"message": error})
        result = reply["result"]
        return result if isinstance(result, dict) else None

    def _settled_as(self, sent: SentTx, pending: _Pending | None,
                    raw: dict[str, Any] | None) -> Receipt | TransactionReverted | None:
        if raw is None:
            if pending is not None and time.monotonic() - pending.last_sent >= self.replace_after:
                self._replace(sent, pending)
            return None
        with self._pending_lock:
            self._pending.pop((sent.sender, sent.nonce), None)
        receipt = receipt_from_rpc(raw)
        if receipt["status"] != 1:
            return self._replay_failure(sent.fn, sent.sender, receipt)
        return receipt

    def _replace(self, sent: SentTx, pending: _Pending) -> None:
        """Send ``sent`` again with the same nonce and higher fees (up to the ceiling)."""
        base, tip = self._market()
        try:
            fees = bumped_fees(pending.tx, base, tip, self.max_fee_wei)
        except FeeCeilingError as exc:
            pending.last_sent = time.monotonic()  # try again after another replace_after
            log.warning("transaction %s not mined and not replaced: %s", sent.hex, exc)
            return
        tx = {**pending.tx, **fees}
        try:
            tx_hash = self._broadcast(sent.fn, tx, pending.signer)
        except ChainError as exc:  # "nonce too low": one of them was mined; the next poll sees it
            pending.last_sent = time.monotonic()
            log.warning("replacing transaction %s failed: %s", sent.hex, exc)
            return
        with self._pending_lock:
            pending.tx, pending.last_sent = tx, time.monotonic()
            pending.hashes.append(tx_hash)
        log.warning("transaction %s not mined in %.0f s: replaced by 0x%s (max fee %d gwei)",
                    sent.hex, self.replace_after, tx_hash.hex(), fees["maxFeePerGas"] // 10**9)

    def _forget_stale(self, now: float) -> None:
        # Callers that stop asking (the KOS drops a transaction after receipt_timeout) would
        # otherwise leave their entries here for good.
        limit = 2 * self.receipt_timeout
        for key in [k for k, p in self._pending.items() if now - p.first_sent > limit]:
            del self._pending[key]

    def _fee_params(self) -> dict[str, int]:
        """EIP-1559 fees, re-read at most every 2 s (two RPC calls fewer per transaction);
        :class:`FeeCeilingError` when the chain's fees are above ``max_fee_gwei``."""
        if self._fees is None or time.monotonic() - self._fees[1] > 2.0:
            self._fees = (initial_fees(*self._market(), self.max_fee_wei), time.monotonic())
        return dict(self._fees[0])

    def _market(self) -> tuple[int, int]:
        """(base fee of the latest block, the node's suggested tip), in wei."""
        return int(self.latest_block()["baseFeePerGas"]), quantity(self.raw("eth_maxPriorityFeePerGas", []))

    def max_fee_per_gas(self) -> int:
        """The max fee per gas a transaction sent now would offer (under ``max_fee_gwei``)."""
        return max_fee_per_gas(*self._market(), self.max_fee_wei)

    def _next_nonce(self, sender: str) -> int:
        # Asked of the node for every transaction (under the lock, so concurrent sends from
        # this process get consecutive nonces: each is in the node's pool before the next
        # is numbered). A nonce remembered here would run ahead of the chain after a reorg
        # dropped this account's transactions, and every later one would wait forever.
        return quantity(self.raw("eth_getTransactionCount", [sender, "pending"]))

    def _replay_failure(self, call: Call, sender: str, receipt: Receipt) -> TransactionReverted:
        """The contract error of a mined, reverted transaction, found by replaying its call:
        first on the state its block left (a reverted transaction changes nothing, so that is
        the state it lost a race to, e.g. a transaction ordered before it in the block), then
        on the state before the block."""
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        for block in (receipt["blockNumber"], receipt["blockNumber"] - 1):
            try:
                self.raw("eth_call", [{"from": sender, **_target(call), "data": "0x" + call.data.hex()},
                                      hex(block)])
            except RpcError as exc:
                decoded = self._errors.decode_revert(exc.data, exc.rpc_message)
                decoded.tx = tx
                return decoded
            except ChainError:  # the revert itself is what we report
                break
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


def _first_block_after(stamp: Callable[[int], int], timestamp: int, low: int, high: int) -> int:
    """The first block in ``[low, high + 1]`` stamped after ``timestamp`` (``high + 1``: none),
    ``stamp`` giving a block's timestamp: steps of 1, 2, 4... back from ``high`` until a block
    is not after it, then a bisection of the last step."""
    top, step = high + 1, 1  # every block in [top, high] is stamped after timestamp
    while top - step >= low:
        probe = top - step
        if stamp(probe) <= timestamp:
            low = probe + 1
            break
        top, step = probe, step * 2
    while low < top:  # the answer is in [low, top]
        mid = (low + top) // 2
        if stamp(mid) > timestamp:
            top = mid
        else:
            low = mid + 1
    return low
