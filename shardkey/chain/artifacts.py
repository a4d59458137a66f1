"""ABI and bytecode of the ShardKey contracts, exported by ``make abi``.

Loading them needs neither solc nor ape. The JSON files are package data.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

CONTRACT_NAMES = ("HolderRegistry", "DatasetRegistry", "RetrievalCoordinator", "KosCommittee")


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """Return ``{"abi", "bytecode", "deployedBytecode", "contractName"}`` for a contract."""
    if name not in CONTRACT_NAMES:
        raise KeyError(f"unknown contract {name!r}")
    text = resources.files("shardkey.chain").joinpath("abi", f"{name}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def all_error_abis() -> list[dict[str, Any]]:
    """Every custom error declared by the ShardKey contracts (for revert decoding)."""
    seen: dict[str, dict[str, Any]] = {}
    for name in CONTRACT_NAMES:
        for entry in load_artifact(name)["abi"]:
            if entry.get("type") == "error":
                types = ",".join(_abi_type(i) for i in entry["inputs"])
                signature = f"{entry['name']}({types})"
                seen[signature] = entry
    return list(seen.values())


def _abi_type(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind
