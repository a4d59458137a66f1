"""Deploy the ShardKey contracts from the exported artifacts over plain JSON-RPC.

The devnet uses this; ``scripts/deploy.py`` is the ape equivalent for real networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from shardkey.chain.artifacts import _abi_type, load_artifact
from shardkey.chain.connection import ChainClient
from shardkey.chain.contract import Call
from shardkey.chain.deployment import Deployment
from shardkey.chain.errors import ChainError
from shardkey.chain.rpc import data_bytes

KOS_ROLE = keccak(text="KOS_ROLE")


def _deploy(client: ChainClient, name: str, deployer: LocalAccount, *args: object) -> str:
    artifact = load_artifact(name)
    constructor: dict[str, Any] = next(
        (e for e in artifact["abi"] if e.get("type") == "constructor"), {"inputs": []})
    types = [_abi_type(i) for i in constructor["inputs"]]
    creation = Call(None, data_bytes(artifact["bytecode"]) + encode(types, list(args)),
                    label=f"deploy {name}")
    receipt = client.send(creation, deployer)
    if not receipt["contractAddress"]:
        raise ChainError(f"deploying {name}: no contract address in the receipt of "
                         f"0x{bytes(receipt['transactionHash']).hex()}")
    return str(receipt["contractAddress"])


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
