"""What a ``shardkey`` process imports: ``--help`` only click and the command modules, the
store and fetch paths none of the services' web stack.

Each check runs a fresh interpreter (``sys.modules`` of this test process is shared)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHAIN_AND_KEYS = {"eth_account", "eth_utils", "eth_abi", "eth_keys", "eth_keyfile", "Crypto", "web3", "httpx",
                  "yaml", "pydantic", "pydantic_settings", "coincurve"}
PRINTING = {"rich", "pygments"}
SERVICES = {"starlette", "uvicorn", "prometheus_client", "anyio.to_thread", "kos", "holder_agent", "repairer"}


def imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    """The modules and their top-level packages."""
    return modules | {m.split(".")[0] for m in modules}


def test_help_imports_no_chain_key_or_printing_library() -> None:
    loaded = top_level(imported_after(
        "from shardkey.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"))
    assert "shardkey.cli.repairer_commands" in loaded  # every command module registered
    assert loaded & (CHAIN_AND_KEYS | PRINTING | SERVICES) == set()


@pytest.mark.parametrize("module", ["shardkey.client.store", "shardkey.client.fetch"])
def test_store_and_fetch_paths_import_no_service_stack(module: str) -> None:
    loaded = imported_after(f"import shardkey.cli.commands, shardkey.cli.context, {module}")
    assert "shardkey.chain.rpc" in loaded  # the path does talk to the node
    # httpx (and through it rich and pygments) cost a fifth of a second: both HTTP clients are
    # on the standard library.
    assert top_level(loaded) & (SERVICES | PRINTING | {"httpx", "pydantic_settings", "web3"}) == set()



def test_only_a_command_that_reads_a_policy_file_imports_yaml() -> None:
    assert "yaml" not in imported_after("import shardkey.cli.commands, shardkey.cli.context, "
                                        "shardkey.client.fetch")
    address = "0x" + "11" * 20
    assert "yaml" in imported_after("from shardkey.policy import parse_policy_yaml\n"
                                    f"parse_policy_yaml('requesters: [\"{address}\"]', lambda name: name)")
