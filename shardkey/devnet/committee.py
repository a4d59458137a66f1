"""The devnet's KOS committee (``shardkey devnet up --kos N --kos-threshold T``; default 3 and 2).

Each member has its own account (``kos-member-I``), its own HPKE keystore and passphrase in
``HOME/kos/members/kos-member-I/`` and its own settings file; the admin starts committee epoch 1
with the members in index order and threshold ``T``, so every store on this devnet deals to the
committee. The members are listed in ``devnet.json`` under ``kos_members`` (name, address, pid,
config, data dir, state dir, HPKE keystore, log) and supervised like the holders
(:mod:`shardkey.devnet.supervise`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from shardkey.chain.committee import KosCommittee
from shardkey.chain.connection import ChainClient
from shardkey.crypto.hpke import HpkePrivateKey, HpkeSuiteId
from shardkey.devnet.process import DevnetError
from shardkey.fsutil import atomic_write_bytes
from shardkey.keys import save_hpke_keystore

MAX_MEMBERS = 32
DEFAULT_MEMBERS = 3  # threshold 2: one member may be down, no one member can release


def member_names(count: int) -> list[str]:
    """The account names of ``count`` committee members."""
    return [f"kos-member-{i + 1}" for i in range(count)]


def check_committee(members: int, threshold: int | None) -> int:
    """The threshold for ``members`` (default: a majority); a bad pair is a :class:`DevnetError`."""
    if not 1 <= members <= MAX_MEMBERS:
        raise DevnetError(f"--kos must be between 1 and {MAX_MEMBERS}, got {members}")
    t = threshold if threshold is not None else members // 2 + 1
    if not 1 <= t <= members:
        raise DevnetError(f"--kos-threshold must be between 1 and --kos ({members}), got {t}")
    return t


def setup_members(home: Path, client: ChainClient, committee: str, admin: LocalAccount,
                  accounts: dict[str, LocalAccount], names: list[str], threshold: int,
                  hpke_suite: HpkeSuiteId, toml: Callable[[dict[str, Any]], bytes],
                  settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Keystores and settings of every member, and committee epoch 1; their devnet entries
    (not started). ``settings`` are the values every member's file shares (deployment, ...)."""
    entries: list[dict[str, Any]] = []
    keys: list[bytes] = []
    for name in names:
        folder = home / "kos" / "members" / name
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = HpkePrivateKey.generate(os.urandom, hpke_suite)
        passphrase = os.urandom(24).hex()
        atomic_write_bytes(folder / "passphrase", passphrase.encode(), mode=0o600)
        save_hpke_keystore(folder / "hpke.json", key, passphrase)
        keys.append(key.public_key_bytes())
        config = folder / "member.toml"
        state_dir = folder / "state"
        atomic_write_bytes(config, toml({
            **settings, "account_key": home / "keys" / f"{name}.key", "hpke_keystore": folder / "hpke.json",
            "passphrase_file": folder / "passphrase", "state_dir": state_dir}), mode=0o600)
        entries.append({"name": name, "module": "kos", "address": accounts[name].address,
                        "config": str(config), "data_dir": str(folder), "state_dir": str(state_dir),
                        "hpke_keystore": str(folder / "hpke.json"),
                        "hpke_public_key": key.public_key_bytes().hex(),
                        "log": str(home / "logs" / f"{name}.log")})
    KosCommittee(client, committee).start_epoch(admin, [accounts[n].address for n in names], keys, threshold)
    return entries
