"""A burst of retrieval requests in one block, and the wait until every one has its tokens.

Used by the single-KOS section (``kos``: a 1-of-1 committee member) and by the committee section
(``committee``: 3 of 2, 5 of 3), so all measure the same thing the same way: 100 requests mined
in one block with mining stopped, then a block every second with no automine, as on a real
chain (the services' transactions wait for the next block like everyone's). "Settled" is every
request holding a ``TokenIssued`` for each of its fragment holders (it fires in the transaction
of the ``t_k``-th member's release).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BLOCK_TIME_S = 1
WAIT_S = 180.0


@dataclass
class Burst:
    ids: set[int]
    start_block: int
    mined_block: int
    mined_at: float
    settled_at: float | None
    cpu_seconds: float

    @property
    def seconds(self) -> float:
        return (self.settled_at or time.monotonic()) - self.mined_at


def burst(suite: Any, dev: Any, dataset_id: bytes, holders: int, count: int,
          service_pids: Sequence[int]) -> Burst:
    """Mine ``count`` requests for ``dataset_id`` in one block; wait for all their tokens.

    ``service_pids``: the processes whose CPU time (``/proc``) the burst is charged to.
    """
    from bench.suite import process_cpu_seconds
    chain = dev.chain()
    client = chain.client
    requester = dev.account("requester")
    fn = chain.retrievals.contract.functions.requestRetrieval
    zero = "0x" + "00" * 20
    attestation = (zero, 0, 0, 0, 0, b"\0" * 32)
    first = client.call(chain.retrievals.contract.functions.requestCount()) + 1
    nonce = client.w3.eth.get_transaction_count(requester.address, "pending")
    gas_price = 2 * client.w3.eth.gas_price + 10**9
    signed = []
    for i in range(count):
        tx = fn(dataset_id, os.urandom(32), attestation, zero, b"").build_transaction(
            {"from": requester.address, "nonce": nonce + i, "gas": 400_000, "gasPrice": gas_price,
             "chainId": client.chain_id})
        signed.append(requester.sign_transaction(tx).raw_transaction)
    cpu_before = sum(process_cpu_seconds(p) for p in service_pids)
    start_block = client.block_number()
    # anvil takes whole seconds over RPC and cannot go back to automine-plus-interval mode
    suite.rpc("evm_setIntervalMining", [0], dev)
    suite.rpc("evm_setAutomine", [False], dev)
    try:
        for raw in signed:
            client.w3.eth.send_raw_transaction(raw)
        suite.rpc("evm_mine", [], dev)
        mined = time.monotonic()
    finally:
        suite.rpc("evm_setIntervalMining", [BLOCK_TIME_S], dev)
    ids = set(range(first, first + count))
    tokens: dict[int, int] = {}
    event = chain.retrievals.contract.events.TokenIssued
    settled_at = None
    scanned = start_block  # only new blocks each round: the watcher must not load the machine
    while time.monotonic() - mined < WAIT_S:
        head = client.block_number()
        if head > scanned:
            for entry in event().get_logs(from_block=scanned + 1, to_block=head):
                rid = int(entry["args"]["requestId"])
                tokens[rid] = tokens.get(rid, 0) + 1
            scanned = head
        if sum(1 for r in ids if tokens.get(r, 0) >= holders) == count:
            settled_at = time.monotonic()
            break
        time.sleep(0.05)
    cpu = sum(process_cpu_seconds(p) for p in service_pids) - cpu_before
    return Burst(ids=ids, start_block=start_block, mined_block=start_block + 1, mined_at=mined,
                 settled_at=settled_at, cpu_seconds=cpu)


def request_blocks(chain: Any, b: Burst) -> int:
    """How many blocks the burst's requests landed in (1 if the burst worked as meant)."""
    requested = chain.retrievals.contract.events.RetrievalRequested().get_logs(from_block=b.start_block + 1)
    return len({int(e["blockNumber"]) for e in requested if int(e["args"]["requestId"]) in b.ids})
