"""A hundred requests in one block, on this module's own anvil: mining is paused to put them
in one block, and anvil cannot be put back to mining on an interval and on transactions, so
the session's anvil (tests/support/devchain.py) is never paused."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kos.service import measure_throughput
from tests.support.devchain import running_anvil


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_anvil(tmp_path_factory) as url:
        yield url


def test_hundred_requests_approved_in_one_block_all_get_their_tokens_once(world) -> None:
    """Correctness at volume (two members, the threshold, each release all hundred); the time it
    takes is a benchmark figure (make bench), not a test."""
    dataset = world.dataset(world.policy(groups=()))  # no approvals: approved when requested
    client = world.dev.client
    requester = world.requester
    fn = world.chain.retrievals.contract.functions.requestRetrieval
    attestation = ("0x" + "00" * 20, 0, 0, 0, 0, b"\0" * 32)
    nonce = client.w3.eth.get_transaction_count(requester.address, "pending")
    gas_price = 2 * client.w3.eth.gas_price + 10**9
    client.w3.provider.make_request("evm_setIntervalMining", [0])  # no mining at all until evm_mine
    try:
        for i in range(100):
            tx = fn(dataset.dataset_id, os.urandom(32), attestation, attestation[0], b"").build_transaction(
                {"from": requester.address, "nonce": nonce + i, "gas": 400_000,
                 "gasPrice": gas_price, "chainId": client.chain_id})
            client.w3.eth.send_raw_transaction(requester.sign_transaction(tx).raw_transaction)
        world.dev.mine()
    finally:
        client.w3.provider.make_request("evm_setAutomine", [True])  # this anvil only: the KOS's txs mine
    assert len(client.w3.eth.get_block("latest")["transactions"]) == 100  # one block
    count = client.call(world.chain.retrievals.contract.functions.requestCount())
    assert count == 100
    for i in (0, 1):  # raises unless this member released its shares of every request
        measure_throughput(world.member(i), range(1, 101), timeout=300)

    assert all(world.chain.retrievals.request(r).tokens_issued == 3 for r in range(1, 101))
    assert all(world.committee.release_counts(r) == (2, 0) for r in range(1, 101))
    for request_id in (1, 57, 100):
        world.assert_served(request_id, dataset)
