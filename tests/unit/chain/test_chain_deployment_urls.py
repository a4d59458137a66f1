"""The deployment file and the services' settings give several RPC endpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardkey.chain.deployment import Deployment
from shardkey.chain.errors import DeploymentError
from shardkey.service.startup import load_deployment

CONTRACTS = {"HolderRegistry": "0x" + "11" * 20, "DatasetRegistry": "0x" + "22" * 20,
             "RetrievalCoordinator": "0x" + "33" * 20, "KosCommittee": "0x" + "44" * 20}


def test_rpc_url_alone_is_one_endpoint_and_rpc_urls_several_in_order() -> None:
    one = Deployment.from_json({"rpc_url": "http://a:1", "chain_id": 5, "contracts": CONTRACTS})
    assert one.urls == ["http://a:1"] and "rpc_urls" not in one.to_json()
    many = Deployment.from_json({"rpc_urls": ["http://a:1", "http://b:2"], "chain_id": 5,
                                 "contracts": CONTRACTS})
    assert many.rpc_url == "http://a:1" and many.urls == ["http://a:1", "http://b:2"]
    assert Deployment.from_json(many.to_json()) == many


@pytest.mark.parametrize(("urls", "message"), [
    ([], "rpc_urls must be a non-empty list"), ("http://a:1", "rpc_urls must be a non-empty list"),
    ([""], "rpc_urls must be a non-empty list"), (None, "missing key 'rpc_url'")])
def test_bad_rpc_urls_are_named(urls: object, message: str) -> None:
    data: dict[str, object] = {"chain_id": 5, "contracts": CONTRACTS}
    if urls is not None:
        data["rpc_urls"] = urls
    with pytest.raises(DeploymentError, match=message):
        Deployment.from_json(data, "deployment.json")


def test_settings_override_the_files_endpoints(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps({"rpc_urls": ["http://a:1", "http://b:2"], "chain_id": 5,
                                "contracts": CONTRACTS}))
    assert load_deployment(path).urls == ["http://a:1", "http://b:2"]
    assert load_deployment(path, "http://c:3").urls == ["http://c:3"]
    assert load_deployment(path, "http://c:3", ["http://d:4", "http://e:5"]).urls == ["http://d:4", "http://e:5"]
