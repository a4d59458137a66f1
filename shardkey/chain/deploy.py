"""Deploy the ShardKey contracts from the exported artifacts over plain JSON-RPC.

The devnet uses this; ``scripts/deploy.py`` is the ape equivalent for real networks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import eth_abi
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from shardkey.chain.artifacts import _abi_type, load_artifact
from shardkey.chain.connection import GAS_MARGIN, ChainClient
from shardkey.chain.deployment import Deployment
from shardkey.chain.errors import ChainError
from shardkey.chain.rpc import RpcError, data_bytes, quantity

KOS_ROLE = keccak(text="KOS_ROLE")


def _deploy(client: ChainClient, name: str, deployer: LocalAccount, *args: object) -> str:
    artifact = load_artifact(name)
    constructor = next((e for e in artifact["abi"] if e.get("type") == "constructor"), {"inputs": []})
    types = [_abi_type(i) for i in constructor["inputs"]]
    data = data_bytes(artifact["bytecode"]) + eth_abi.encode(types, list(args))
    try:
        gas = quantity(client.raw("eth_estimateGas", [{"from": deployer.address, "data": "0x" + data.hex()}]))
        nonce = quantity(client.raw("eth_getTransactionCount", [deployer.address, "pending"]))
        block = client.latest_block()
        tip = quantity(client.raw("eth_maxPriorityFeePerGas", []))
        signed = deployer.sign_transaction({
            "data": data, "value": 0, "nonce": nonce, "gas": int(gas * GAS_MARGIN),
            "chainId": client.chain_id, "type": 2, "maxFeePerGas": 2 * block["baseFeePerGas"] + tip,
            "maxPriorityFeePerGas": tip})
        tx_hash = data_bytes(client.raw("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))
    except RpcError as exc:
        raise ChainError(f"deploying {name} failed: {exc.rpc_message}") from None
    deadline = time.monotonic() + 120
    while (receipt := client.raw("eth_getTransactionReceipt", ["0x" + tx_hash.hex()])) is None:
        if time.monotonic() > deadline:
            raise ChainError(f"deploying {name}: tx 0x{tx_hash.hex()} not mined in 120 s")
        time.sleep(0.05)
    if quantity(receipt["status"]) != 1 or not receipt.get("contractAddress"):
        raise ChainError(f"deploying {name} failed (tx 0x{tx_hash.hex()})")
    return to_checksum_address(receipt["contractAddress"])


def deploy_all(client: ChainClient, admin: LocalAccount, kos_accounts: Sequence[str]) -> Deployment:
    """Deploy HolderRegistry, DatasetRegistry and RetrievalCoordinator; grant KOS_ROLE."""
    start = client.block_number()
    holders = _deploy(client, "HolderRegistry", admin, admin.address)
    datasets = _deploy(client, "DatasetRegistry", admin, holders)
    coordinator = _deploy(client, "RetrievalCoordinator", admin, admin.address, datasets, holders)
    contract = client.contract("RetrievalCoordinator", coordinator)
    for kos in kos_accounts:
        client.send(contract.call("grantRole", KOS_ROLE, to_checksum_address(kos)), admin)
    return Deployment(rpc_url=client.rpc_url, chain_id=client.chain_id, start_block=start,
                      holder_registry=holders, dataset_registry=datasets,
                      retrieval_coordinator=coordinator)
