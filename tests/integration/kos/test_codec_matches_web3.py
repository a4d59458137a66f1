"""The lean codec (shardkey.chain.codec) gives exactly what web3 gives, on real logs and calls."""

from __future__ import annotations

from typing import Any

from hexbytes import HexBytes

from shardkey.chain.events import EventDecoder
from shardkey.chain.rpc import receipt_from_rpc


def _plain(value: Any) -> Any:
    """web3's AttributeDicts, HexBytes and lists as plain dicts, bytes and tuples."""
    if isinstance(value, HexBytes | bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def test_events_and_reads_decode_as_web3_does(world) -> None:
    dataset = world.dataset()
    request_id = world.request(dataset)
    world.approve(request_id)
    world.serve(request_id)  # releases and the threshold's tokens: SharesReleased, TokenIssued too
    chain = world.chain
    logs = chain.client.w3.eth.get_logs({"address": [c.address for c in chain.contracts.values()],
                                         "fromBlock": world.dev.deployment.start_block})
    decoder = EventDecoder(chain.contracts)
    by_address = {c.address: c for c in chain.contracts.values()}
    names = set()
    for log in logs:
        ours = decoder.decode(log)
        theirs = by_address[ours.address].events[ours.name]().process_log(log)
        assert _plain(ours.args) == _plain(theirs["args"]), ours.name
        assert (ours.block_number, ours.log_index, ours.tx_hash) == (
            theirs["blockNumber"], theirs["logIndex"], bytes(theirs["transactionHash"]))
        names.add(ours.name)
    assert {"HolderRegistered", "DatasetRegistered", "RetrievalRequested", "RetrievalApproved",
            "CommitteeEpochStarted", "DealRegistered", "SharesReleased", "TokenIssued"} <= names

    client = chain.client
    coordinator, registry = chain.retrievals.contract, chain.datasets.contract
    holder = dataset.holders[0].address
    for contract, name, args in [
            (coordinator, "request", (request_id,)), (coordinator, "isOpen", (request_id,)),
            (coordinator, "tokenIssued", (request_id, holder)),
            (registry, "dataset", (dataset.dataset_id,)), (registry, "currentPolicy", (dataset.dataset_id,)),
            (chain.holders.contract, "getHolder", (holder,)), (chain.holders.contract, "holders", ())]:
        expected = contract.functions[name](*args).call()  # web3's own encoding and decoding
        assert _plain(client.read(contract, name, *args)) == _plain(expected), name


def test_filtered_logs_and_receipts_decode_as_web3_does(world) -> None:
    dataset = world.dataset()
    first, second = world.request(dataset), world.request(dataset)
    coordinator = world.chain.retrievals.contract
    start = world.dev.deployment.start_block

    ours = coordinator.get_logs("RetrievalRequested", start, requestId=second)
    theirs = coordinator.events.RetrievalRequested().get_logs(
        from_block=start, argument_filters={"requestId": second})
    assert [e.args["requestId"] for e in ours] == [second] and first != second
    assert [_plain(e.args) for e in ours] == [_plain(t["args"]) for t in theirs]
    assert coordinator.get_logs("RetrievalRequested", start, requestId=10**9) == []

    tx_hash = "0x" + ours[0].tx_hash.hex()
    receipt = receipt_from_rpc(world.chain.client.raw("eth_getTransactionReceipt", [tx_hash]))
    web3_receipt = world.chain.client.w3.eth.get_transaction_receipt(tx_hash)
    expected_events = coordinator.events.RetrievalRequested().process_receipt(web3_receipt)
    assert [_plain(e.args) for e in coordinator.process_receipt("RetrievalRequested", receipt)] == \
        [_plain(e["args"]) for e in expected_events]
