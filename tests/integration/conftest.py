"""Fixtures of the integration suites: the session anvil (tests/support/devchain.py) and
a private automining one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.deploy import deploy_all
from shardkey.devnet.anvil import start_anvil
from shardkey.devnet.process import stop
from tests.support.pagecache import drops_pages

pytest_plugins = ["tests.support.devchain"]

FUNDING = hex(10**21)


@pytest.fixture
def automine_chain(tmp_path: Path) -> Iterator[ShardKeyChain]:
    """A private anvil that mines only on transactions, so block numbers are exact."""
    pid, url = start_anvil(tmp_path / "anvil.log", block_time=None)
    try:
        client = ChainClient(url)
        admin = Account.create()
        client.w3.provider.make_request("anvil_setBalance", [admin.address, FUNDING])
        deployment = deploy_all(client, admin)
        chain = ShardKeyChain(deployment, client)
        chain.admin = admin  # type: ignore[attr-defined]
        yield chain
    finally:
        stop(pid)


@pytest.fixture
def page_cache_folder(tmp_path: Path) -> Path:
    """``tmp_path``, on a filesystem whose clean pages can leave the page cache (skipped on
    tmpfs, whose pages are the file: there is nothing to drop or to bypass)."""
    if not drops_pages(tmp_path):
        pytest.skip(f"{tmp_path}'s filesystem keeps every page (tmpfs): nothing to drop or bypass")
    return tmp_path
