"""The ABIs and bytecode shipped in shardkey/chain/abi must equal a fresh compile.

Services load those files at run time (no solc, no ape); if a contract changes without
``make abi``, this test fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXPORTED = Path(__file__).resolve().parents[2] / "shardkey" / "chain" / "abi"


@pytest.mark.parametrize("name", ["HolderRegistry", "DatasetRegistry", "RetrievalCoordinator",
                                  "KosCommittee"])
def test_exported_artifacts_match_fresh_compile(project, name: str) -> None:
    exported = json.loads((EXPORTED / f"{name}.json").read_text())
    fresh = project.get_contract(name).contract_type.model_dump(mode="json", by_alias=True)
    assert exported["abi"] == fresh["abi"], f"ABI of {name} changed: run 'make abi'"
    assert exported["bytecode"] == fresh["deploymentBytecode"]["bytecode"], \
        f"bytecode of {name} changed: run 'make abi'"
    assert exported["deployedBytecode"] == fresh["runtimeBytecode"]["bytecode"]
