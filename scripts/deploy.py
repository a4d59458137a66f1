"""Deploy the ShardKey contracts with ape: `ape run deploy --network <ecosystem>:<network>:<provider>`.

Prefer `shardkey network deploy` (docs/OPERATIONS.md): no ape, no compiler, a V3 keystore
and a passphrase file. This script writes the same deployment file, for those who deploy
with ape accounts:

- SHARDKEY_DEPLOYER_ALIAS: the ape account (default: test account 0 on a local network);
  it becomes the admin of HolderRegistry, RetrievalCoordinator and KosCommittee.
- The KosCommittee alone gets KOS_ROLE, as with deploy_all; the admin then starts its first
  epoch with the members' accounts and HPKE keys (`shardkey kos committee start`).
- SHARDKEY_DEPLOYMENT_OUT (default deployment.json; never overwritten) and
  SHARDKEY_RPC_URL (default: the provider's URI) for the file.

The compiler is the project's own (tools/solc) unless SOLCX_BINARY_PATH says otherwise, so
nothing is downloaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SOLCX_BINARY_PATH", str(REPO / "tools" / "solc"))

from ape import accounts, chain, project  # noqa: E402  (after the compiler path is set)

from shardkey.chain.deployment import Deployment  # noqa: E402


def _deployer() -> Any:
    alias = os.environ.get("SHARDKEY_DEPLOYER_ALIAS")
    return accounts.load(alias) if alias else accounts.test_accounts[0]


def _fail(message: str) -> None:
    print(f"deploy: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    out = Path(os.environ.get("SHARDKEY_DEPLOYMENT_OUT", "deployment.json"))
    if out.exists():
        _fail(f"{out} already exists; a deployment file is never overwritten")
    rpc_url = os.environ.get("SHARDKEY_RPC_URL") or str(getattr(chain.provider, "uri", "") or "")
    if not rpc_url:
        _fail("set SHARDKEY_RPC_URL: the provider has no URI to put in the deployment file")
    deployer = _deployer()
    start = chain.blocks.head.number
    holders = deployer.deploy(project.HolderRegistry, deployer)
    datasets = deployer.deploy(project.DatasetRegistry, holders)
    coordinator = deployer.deploy(project.RetrievalCoordinator, deployer, datasets, holders)
    datasets.setRetrievalCoordinator(coordinator, sender=deployer)
    holders.grantRole(holders.FAILURE_PROVER_ROLE(), coordinator, sender=deployer)  # as deploy_all does
    committee = deployer.deploy(project.KosCommittee, deployer, coordinator)
    coordinator.grantRole(coordinator.KOS_ROLE(), committee, sender=deployer)  # as deploy_all does
    deployment = Deployment(rpc_url=rpc_url, chain_id=chain.chain_id, start_block=start,
                            holder_registry=str(holders.address), dataset_registry=str(datasets.address),
                            retrieval_coordinator=str(coordinator.address),
                            kos_committee=str(committee.address))
    deployment.save(out)
    print(f"deployment written to {out}")
