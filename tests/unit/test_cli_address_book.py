"""``--network network.yaml``: other people are named by address or by a public entry, and a
policy naming them by alias resolves without any passphrase (none is set here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from shardkey.chain.deployment import Deployment
from shardkey.cli.context import Env
from shardkey.errors import UsageError
from shardkey.keys import save_eth_keystore
from shardkey.policy.yaml_file import parse_policy_yaml

ADDRESS = "0x" + "11" * 20


def _network(tmp_path: Path, body: str) -> Env:
    deployment = Deployment(rpc_url="http://127.0.0.1:9", chain_id=4242, start_block=1,
                            holder_registry=ADDRESS, dataset_registry=ADDRESS, retrieval_coordinator=ADDRESS,
                            kos_committee=ADDRESS)
    (tmp_path / "deployment.json").write_text(json.dumps(deployment.to_json()))
    (tmp_path / "network.yaml").write_text(body)
    return Env(home=tmp_path / "home", network_file=tmp_path / "network.yaml")


def test_a_policy_names_other_people_by_alias_without_their_passphrases(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHARDKEY_PASSWORD", raising=False)
    me, rep, provider = Account.create(), Account.create(), Account.create()
    (tmp_path / "keys").mkdir()
    save_eth_keystore(tmp_path / "keys" / "me.json", me, "my own secret")
    save_eth_keystore(tmp_path / "provider.json", provider, "the provider's secret, unknown here")
    env = _network(tmp_path, f"""\
deployment: deployment.json
accounts:
  me: keys/me.json
addresses:
  client-rep: "{rep.address.lower()}"
  provider-rep: provider.json
""")
    policy = parse_policy_yaml("requesters: [me]\napprovals:\n"
                               "  - {group: ops, members: [client-rep, provider-rep], required: 2}\n",
                               env.resolve)
    assert policy.policy.requesters == (me.address,)
    assert set(policy.policy.groups[0].members) == {rep.address, provider.address}
    assert env.names()[rep.address] == "client-rep"


def test_network_file_errors_name_the_key(tmp_path: Path) -> None:
    env = _network(tmp_path, "deployment: deployment.json\naddressbook: {}\n")
    with pytest.raises(UsageError, match="unknown key 'addressbook'"):
        _ = env.network
    env = _network(tmp_path, "deployment: deployment.json\naddresses: {x: nowhere.json}\n")
    with pytest.raises(UsageError, match=r"nowhere\.json"):
        env.resolve("x")
