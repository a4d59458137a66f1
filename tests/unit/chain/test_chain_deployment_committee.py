"""The deployment file's KosCommittee address: optional, so files written before the committee
existed still load; code that needs it gets an error telling to redeploy."""

from __future__ import annotations

import pytest

from shardkey.chain.deployment import Deployment
from shardkey.chain.errors import DeploymentError

OLD = {"rpc_url": "http://a:1", "chain_id": 5,
       "contracts": {"HolderRegistry": "0x" + "11" * 20, "DatasetRegistry": "0x" + "22" * 20,
                     "RetrievalCoordinator": "0x" + "33" * 20}}


def test_an_old_file_loads_and_names_the_fix_when_the_committee_is_needed() -> None:
    old = Deployment.from_json(OLD, "old.json")
    assert old.kos_committee == "" and "KosCommittee" not in old.to_json()["contracts"]  # type: ignore[operator]
    with pytest.raises(DeploymentError, match=r"old.json has no contracts.KosCommittee.*redeploy"):
        old.require_kos_committee("old.json")


def test_the_committee_address_round_trips_and_is_checked() -> None:
    data = {**OLD, "contracts": {**OLD["contracts"], "KosCommittee": "0x" + "44" * 20}}  # type: ignore[dict-item]
    new = Deployment.from_json(data)
    assert new.require_kos_committee() == "0x" + "44" * 20
    assert Deployment.from_json(new.to_json()) == new
    bad = {**OLD, "contracts": {**OLD["contracts"], "KosCommittee": "nope"}}  # type: ignore[dict-item]
    with pytest.raises(DeploymentError, match=r"contracts\.KosCommittee is not an address"):
        Deployment.from_json(bad, "bad.json")
