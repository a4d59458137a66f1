"""Deploy the ShardKey contracts with plain web3 from the exported artifacts.

The devnet uses this; ``scripts/deploy.py`` is the ape equivalent for real networks.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from shardkey.chain.artifacts import load_artifact
from shardkey.chain.connection import ChainClient
from shardkey.chain.deployment import Deployment
from shardkey.chain.errors import ChainError

KOS_ROLE = keccak(text="KOS_ROLE")


def _deploy(client: ChainClient, name: str, deployer: LocalAccount, *args: object) -> str:
    artifact = load_artifact(name)
    factory = client.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    nonce = client.w3.eth.get_transaction_count(deployer.address, "pending")
    tx = factory.constructor(*args).build_transaction({
        "from": deployer.address, "nonce": nonce, "chainId": client.chain_id})
    signed = deployer.sign_transaction(tx)
    tx_hash = client.w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = client.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.05)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise ChainError(f"deploying {name} failed (tx 0x{bytes(tx_hash).hex()})")
    return to_checksum_address(receipt["contractAddress"])


def deploy_all(client: ChainClient, admin: LocalAccount, kos_accounts: Sequence[str]) -> Deployment:
    """Deploy HolderRegistry, DatasetRegistry and RetrievalCoordinator; grant KOS_ROLE."""
    start = client.block_number()
    holders = _deploy(client, "HolderRegistry", admin, admin.address)
    datasets = _deploy(client, "DatasetRegistry", admin, holders)
    coordinator = _deploy(client, "RetrievalCoordinator", admin, admin.address, datasets, holders)
    contract = client.contract("RetrievalCoordinator", coordinator)
    for kos in kos_accounts:
        client.send(contract.functions.grantRole(KOS_ROLE, to_checksum_address(kos)), admin)
    return Deployment(rpc_url=client.rpc_url, chain_id=client.chain_id, start_block=start,
                      holder_registry=holders, dataset_registry=datasets,
                      retrieval_coordinator=coordinator)
