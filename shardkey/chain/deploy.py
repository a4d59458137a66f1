"""Deploy the ShardKey contracts from the exported artifacts over plain JSON-RPC.

``shardkey network deploy`` (any network) and the devnet use this; the bytecode is the
package's ``shardkey/chain/abi`` export, so deploying never compiles or downloads anything.
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount

from shardkey.chain.artifacts import _abi_type, load_artifact
from shardkey.chain.bindings import KOS_ROLE, DatasetRegistry, HolderRegistry, RetrievalCoordinator
from shardkey.chain.connection import ChainClient
from shardkey.chain.contract import Call
from shardkey.chain.deployment import Deployment
from shardkey.chain.errors import ChainError
from shardkey.chain.rpc import data_bytes

__all__ = ["KOS_ROLE", "deploy_all"]


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


def deploy_all(client: ChainClient, admin: LocalAccount) -> Deployment:
    """Deploy HolderRegistry, DatasetRegistry, RetrievalCoordinator and KosCommittee (after the
    coordinator, which it reads); name the coordinator to the dataset registry (re-deals and proven
    shard failures) and give it FAILURE_PROVER_ROLE on the holder registry (proven failures fail a
    holder); grant KOS_ROLE to the committee, and to no one else (its t_k-th release issues the
    tokens, its denials deny). The committee has no epoch yet: its admin (``admin``) starts one
    with the members' keys.

    ``start_block`` is the block before the first deployment transaction, so watchers
    starting there miss no event of these contracts.
    """
    start = client.block_number()
    holders = _deploy(client, "HolderRegistry", admin, admin.address)
    datasets = _deploy(client, "DatasetRegistry", admin, holders)
    coordinator = _deploy(client, "RetrievalCoordinator", admin, admin.address, datasets, holders)
    committee = _deploy(client, "KosCommittee", admin, admin.address, coordinator)
    DatasetRegistry(client, datasets).set_retrieval_coordinator(admin, coordinator)
    HolderRegistry(client, holders).grant_failure_prover_role(admin, coordinator)
    RetrievalCoordinator(client, coordinator).grant_kos_role(admin, committee)
    return Deployment(rpc_url=client.rpc_url, chain_id=client.chain_id, start_block=start,
                      holder_registry=holders, dataset_registry=datasets,
                      retrieval_coordinator=coordinator, kos_committee=committee)
