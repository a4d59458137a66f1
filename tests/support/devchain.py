"""Pytest fixtures: a real anvil chain with freshly deployed ShardKey contracts.

``anvil_url`` starts one anvil for the test session (interval mining every 0.2 s plus
automine, so confirmations advance). ``devchain`` deploys a fresh set of contracts for
each test and hands out funded named accounts; ``register_holders`` registers and
activates holders with HPKE keys.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.deploy import deploy_all
from shardkey.chain.deployment import Deployment
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.devnet.anvil import start_anvil
from shardkey.devnet.process import stop

FUNDING = hex(10_000 * 10**18)


@dataclass
class DevChain:
    """A fresh deployment on the session's anvil, with named funded accounts."""

    client: ChainClient
    deployment: Deployment
    chain: ShardKeyChain
    accounts: dict[str, LocalAccount]
    kos_key: HpkePrivateKey
    holder_keys: dict[str, HpkePrivateKey] = field(default_factory=dict)

    def account(self, name: str) -> LocalAccount:
        """A named account, created and funded on first use."""
        if name not in self.accounts:
            account = Account.create()
            self.client.w3.provider.make_request("anvil_setBalance", [account.address, FUNDING])
            self.accounts[name] = account
        return self.accounts[name]

    def register_holders(self, count: int, endpoint: str = "http://127.0.0.1:9") -> list[LocalAccount]:
        """Register and activate ``count`` holders named holder-1..N."""
        holders = []
        for i in range(count):
            name = f"holder-{i + 1}"
            account = self.account(name)
            key = HpkePrivateKey.generate(os.urandom)
            self.holder_keys[name] = key
            self.chain.holders.register(account, key.public_key_bytes(), endpoint, f"region-{i}",
                                        48_000_000 + i, 2_000_000 + i)
            self.chain.holders.activate(self.accounts["admin"], account.address)
            holders.append(account)
        return holders

    def mine(self, blocks: int = 1) -> None:
        """Mine blocks now."""
        for _ in range(blocks):
            self.client.w3.provider.make_request("evm_mine", [])

    def set_next_timestamp(self, timestamp: int) -> None:
        """The next block gets this timestamp."""
        self.client.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


@contextlib.contextmanager
def running_anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An anvil mining every 0.2 s and on every transaction, stopped on exit."""
    log = Path(tmp_path_factory.mktemp("anvil")) / "anvil.log"
    pid, url = start_anvil(log, block_time=0.2)
    try:
        yield url
    finally:
        stop(pid)


@pytest.fixture(scope="session")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's anvil. Never pause its mining: anvil cannot be put back into mining both
    on an interval and on transactions (``evm_setAutomine(true)`` leaves it mining only on
    transactions, and every later test waiting for blocks would hang). A test that pauses
    mining overrides this fixture with its own anvil (tests/integration/kos/test_kos_volume.py)."""
    with running_anvil(tmp_path_factory) as url:
        yield url


@pytest.fixture
def devchain(anvil_url: str) -> DevChain:
    client = ChainClient(anvil_url)
    accounts: dict[str, LocalAccount] = {}
    for name in ("admin", "kos"):
        account = Account.create()
        client.w3.provider.make_request("anvil_setBalance", [account.address, FUNDING])
        accounts[name] = account
    deployment = deploy_all(client, accounts["admin"], [accounts["kos"].address])
    kos_key = HpkePrivateKey.generate(os.urandom)
    deployment = Deployment(**{**deployment.__dict__, "kos_public_key": kos_key.public_key_bytes()})
    return DevChain(client=client, deployment=deployment, chain=ShardKeyChain(deployment, client),
                    accounts=accounts, kos_key=kos_key)
