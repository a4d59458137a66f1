"""Deploy the ShardKey contracts: `ape run deploy --network <ecosystem>:<network>:<provider>`.

The deployer (an ape account alias in SHARDKEY_DEPLOYER_ALIAS, else the first test account on a
local network) becomes the admin of HolderRegistry and RetrievalCoordinator. KOS_ROLE goes to
SHARDKEY_KOS_ADDRESS when set. Prints the addresses as one JSON object.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ape import accounts, chain, project


def _deployer() -> Any:
    alias = os.environ.get("SHARDKEY_DEPLOYER_ALIAS")
    return accounts.load(alias) if alias else accounts.test_accounts[0]


def main() -> None:
    deployer = _deployer()
    holders = deployer.deploy(project.HolderRegistry, deployer)
    datasets = deployer.deploy(project.DatasetRegistry, holders)
    coordinator = deployer.deploy(project.RetrievalCoordinator, deployer, datasets, holders)
    kos = os.environ.get("SHARDKEY_KOS_ADDRESS")
    if kos:
        coordinator.grantRole(coordinator.KOS_ROLE(), kos, sender=deployer)
    print(json.dumps({
        "chainId": chain.chain_id,
        "admin": str(deployer.address),
        "kos": kos,
        "HolderRegistry": str(holders.address),
        "DatasetRegistry": str(datasets.address),
        "RetrievalCoordinator": str(coordinator.address),
    }))
