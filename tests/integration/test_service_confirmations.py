"""The default confirmation depth, as both services resolve it at start-up on a real chain.

Unset ``confirmations`` means 1 on the devnet (anvil's chain id 31337) and 12 anywhere
else; here "anywhere else" is an anvil started with Sepolia's chain id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from holder_agent.service import build_agent
from holder_agent.settings import HolderSettings
from kos.service import build
from kos.settings import KosSettings
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.deploy import deploy_all
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.devnet.anvil import start_anvil
from shardkey.devnet.process import stop
from shardkey.keys import save_hpke_keystore, save_plain_account_key
from shardkey.settings import SAFE_CONFIRMATIONS
from tests.support.devchain import FUNDING

SEPOLIA = 11155111
PASSPHRASE = "depth passphrase"  # noqa: S105 - a test keystore's


@pytest.fixture(scope="module")
def sepolia_like_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("anvil-sepolia")) / "anvil.log"
    pid, url = start_anvil(log, block_time=0.2, chain_id=SEPOLIA)
    try:
        yield url
    finally:
        stop(pid)


def _deployed(url: str, folder: Path) -> dict[str, Any]:
    """Contracts, a 1-of-1 KOS committee epoch and one registered holder on the chain at ``url``."""
    client = ChainClient(url)
    accounts = {name: Account.create() for name in ("admin", "kos", "holder")}
    for account in accounts.values():
        client.raw("anvil_setBalance", [account.address, FUNDING])
    kos_key, holder_key = HpkePrivateKey.generate(os.urandom), HpkePrivateKey.generate(os.urandom)
    deployment = deploy_all(client, accounts["admin"])  # no KOS_ROLE EOA: the committee holds it
    chain = ShardKeyChain(deployment, client)
    assert chain.committee is not None
    chain.committee.start_epoch(accounts["admin"], [accounts["kos"].address], [kos_key.public_key_bytes()], 1)
    chain.holders.register(
        accounts["holder"], holder_key.public_key_bytes(), "http://127.0.0.1:9", "eu", 48_000_000, 2_000_000)
    folder.mkdir()
    (folder / "deployment.json").write_text(json.dumps(deployment.to_json()))
    (folder / "passphrase").write_text(PASSPHRASE)
    for name, key in (("kos", kos_key), ("holder", holder_key)):
        save_plain_account_key(folder / f"{name}.key", accounts[name])
        save_hpke_keystore(folder / f"{name}.hpke.json", key, PASSPHRASE)
    return {"deployment": folder / "deployment.json", "passphrase_file": folder / "passphrase"}


def _depths(common: dict[str, Any], folder: Path, **explicit: Any) -> tuple[int, int]:
    kos = build(KosSettings(**common, account_key=folder / "kos.key", hpke_keystore=folder / "kos.hpke.json",
                            state_dir=folder / "kos-state", **explicit))
    holder = build_agent(HolderSettings(**common, account_key=folder / "holder.key",
                                        hpke_keystore=folder / "holder.hpke.json", data_dir=folder / "store",
                                        listen_port=1, **explicit))
    return kos.watcher.confirmations, holder.watcher.confirmations


def test_unset_confirmations_are_12_on_a_chain_that_is_not_the_devnet(sepolia_like_url: str,
                                                                      tmp_path: Path) -> None:
    common = _deployed(sepolia_like_url, tmp_path / "sepolia")
    assert _depths(common, tmp_path / "sepolia") == (SAFE_CONFIRMATIONS, SAFE_CONFIRMATIONS) == (12, 12)
    assert _depths(common, tmp_path / "sepolia", confirmations=3) == (3, 3)  # explicit wins


def test_unset_confirmations_stay_1_on_the_devnet(anvil_url: str, tmp_path: Path) -> None:
    common = _deployed(anvil_url, tmp_path / "devnet")
    assert _depths(common, tmp_path / "devnet") == (1, 1)
