"""The hint under an RPC failure names the endpoint the command used, never the devnet's
unless the devnet is what it used (an admin's ``--deployment`` is a remote network)."""

from __future__ import annotations

import json
from pathlib import Path

from shardkey.chain.deployment import Deployment
from shardkey.cli.context import DEVNET_HINT, Env, connection_hint

ADDRESS = "0x" + "11" * 20


def _deployment_file(tmp_path: Path) -> Path:
    deployment = Deployment(rpc_url="https://eth-sepolia.example/v2/SECRETKEY", chain_id=11155111,
                            start_block=1, holder_registry=ADDRESS, dataset_registry=ADDRESS,
                            retrieval_coordinator=ADDRESS, kos_committee=ADDRESS)
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(deployment.to_json()))
    return path


def test_an_admin_commands_deployment_is_named_not_the_devnet(tmp_path: Path) -> None:
    path = _deployment_file(tmp_path)
    hint = connection_hint(Env(home=tmp_path / "home", deployment_file=path))
    assert hint != DEVNET_HINT and "devnet" not in hint
    assert f"--deployment {path}" in hint and "eth-sepolia.example" in hint
    assert "SECRETKEY" not in hint  # URLs carry API keys


def test_without_a_deployment_or_network_file_the_devnet_hint_stays(tmp_path: Path) -> None:
    assert connection_hint(Env(home=tmp_path / "home")) == DEVNET_HINT
