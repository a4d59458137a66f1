"""The deployment file names the KosCommittee and no KOS key: a file written before the
committee (no KosCommittee, or the single KOS key it named) is refused with the fix."""

from __future__ import annotations

import pytest

from shardkey.chain.deployment import Deployment
from shardkey.chain.errors import DeploymentError

THREE = {"HolderRegistry": "0x" + "11" * 20, "DatasetRegistry": "0x" + "22" * 20,
         "RetrievalCoordinator": "0x" + "33" * 20}
NEW = {"rpc_url": "http://a:1", "chain_id": 5, "contracts": {**THREE, "KosCommittee": "0x" + "44" * 20}}


@pytest.mark.parametrize(("data", "what"), [
    ({**NEW, "contracts": THREE}, "has no contracts.KosCommittee"),
    ({**NEW, "kos_public_key": "ab" * 32}, r"names a single KOS key \(kos_public_key\)"),
])
def test_a_file_from_before_the_committee_is_refused_naming_the_fix(data: dict[str, object],
                                                                   what: str) -> None:
    with pytest.raises(DeploymentError, match=rf"old.json {what}: .*no KOS serves it.*redeploy with "
                                              r"'shardkey network deploy'.*shardkey kos committee start"):
        Deployment.from_json(data, "old.json")


def test_the_committee_address_round_trips_and_is_checked() -> None:
    new = Deployment.from_json(NEW)
    assert new.kos_committee == "0x" + "44" * 20
    assert "kos_public_key" not in new.to_json()
    assert Deployment.from_json(new.to_json()) == new
    bad = {**NEW, "contracts": {**THREE, "KosCommittee": "nope"}}
    with pytest.raises(DeploymentError, match=r"contracts\.KosCommittee is not an address"):
        Deployment.from_json(bad, "bad.json")
