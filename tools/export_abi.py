"""Export ABIs and bytecode of the production contracts into the Python package.

Services and holders load ``shardkey/chain/abi/<Contract>.json`` at run time, so they
need neither solc nor ape. ``tests/contracts/test_abi_export.py`` fails when these files
differ from a fresh compile; rerun ``make abi`` after changing a contract.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "shardkey" / "chain" / "abi"
CONTRACTS = ("HolderRegistry", "DatasetRegistry", "RetrievalCoordinator", "KosCommittee")


def artifact(contract_type: dict[str, Any]) -> dict[str, Any]:
    """The subset of an ape contract type the services need."""
    return {
        "contractName": contract_type["contractName"],
        "abi": contract_type["abi"],
        "bytecode": contract_type["deploymentBytecode"]["bytecode"],
        "deployedBytecode": contract_type["runtimeBytecode"]["bytecode"],
    }


def main() -> int:
    ape = Path(sys.executable).parent / "ape"
    subprocess.run([str(ape), "compile"], cwd=ROOT, check=True)
    manifest = json.loads((ROOT / ".build" / "__local__.json").read_text())
    OUT.mkdir(parents=True, exist_ok=True)
    for name in CONTRACTS:
        data = artifact(manifest["contractTypes"][name])
        (OUT / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"exported {name}: {len(data['abi'])} ABI entries, "
              f"{(len(data['deployedBytecode']) - 2) // 2} bytes deployed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
