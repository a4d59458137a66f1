"""What every command needs: the home folder, the network, accounts by name.

The ``--network`` file (docs/OPERATIONS.md, "network.yaml")::

    deployment: deployment.json          # required; relative paths: from this file's folder
    max_fee_gwei: 50                     # optional: ceiling of a transaction's max fee per gas
    passphrase_file: secrets/pass        # optional: unlocks the keystores under accounts
    accounts:                            # your own keys, usable with --as NAME
      owner: keys/owner.json             # a keystore path, or
      approver: {keystore: keys/a.json, passphrase_file: secrets/a-pass}
    addresses:                           # other people: an address, or a public key file
      client-rep: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
      provider-rep: people/provider.json # a V3 keystore's clear address is read, never decrypted

Names in policy files resolve through ``addresses`` and ``accounts`` without any passphrase.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shardkey.errors import UsageError

if TYPE_CHECKING:  # the rest is imported where it is used: `shardkey --help` loads none of it
    from eth_account.signers.local import LocalAccount

    from shardkey.chain.bindings import ShardKeyChain
    from shardkey.chain.deployment import Deployment
    from shardkey.devnet.info import DevnetInfo

NETWORK_KEYS = {"deployment", "accounts", "addresses", "passphrase_file", "max_fee_gwei"}
PASSWORD_ENV = "SHARDKEY_PASSWORD"  # noqa: S105 - a variable name


def parse_dataset_id(text: str) -> bytes:
    """A dataset id from ``0x`` + 64 hex digits."""
    raw = text.removeprefix("0x")
    if len(raw) != 64 or any(c not in "0123456789abcdefABCDEF" for c in raw):
        raise UsageError(f"DATASET {text!r}: expected 0x followed by 64 hex digits")
    return bytes.fromhex(raw)


@dataclass
class Env:
    """The resolved environment of one CLI invocation."""

    home: Path
    network_file: Path | None = None
    passphrase_file: Path | None = None
    max_fee_gwei: float | None = None  # --max-fee-gwei (wins over the --network file's)
    deployment_file: Path | None = None  # an admin command's --deployment, once loaded
    _accounts: dict[str, LocalAccount] = field(default_factory=dict)

    @cached_property
    def devnet(self) -> DevnetInfo | None:
        from shardkey.devnet.info import DevnetInfo

        return DevnetInfo.load(self.home)

    @cached_property
    def network(self) -> dict[str, object]:
        """The ``--network`` config (the module docstring gives its format)."""
        if self.network_file is None:
            return {}
        import yaml

        try:
            data = yaml.safe_load(self.network_file.read_text())
        except FileNotFoundError:
            raise UsageError(f"--network {self.network_file}: no such file") from None
        except yaml.YAMLError as exc:
            raise UsageError(f"--network {self.network_file}: not valid YAML ({exc})") from None
        if not isinstance(data, dict) or "deployment" not in data:
            raise UsageError(f"--network {self.network_file}: expected a mapping with a 'deployment' key")
        unknown = sorted(set(data) - NETWORK_KEYS)
        if unknown:
            raise UsageError(f"--network {self.network_file}: unknown key {unknown[0]!r} "
                             f"(known: {', '.join(sorted(NETWORK_KEYS))})")
        for key in ("accounts", "addresses"):
            if not isinstance(data.get(key) or {}, dict):
                raise UsageError(f"--network {self.network_file}: {key} must be a mapping of names")
        return data

    def _network_path(self, value: object) -> Path:
        path = Path(str(value)).expanduser()
        if not path.is_absolute() and self.network_file is not None:
            path = self.network_file.parent / path
        return path

    @cached_property
    def deployment(self) -> Deployment:
        from shardkey.chain.deployment import Deployment

        if self.network:
            return Deployment.load(self._network_path(self.network["deployment"]))
        if self.devnet is None:
            raise UsageError(f"no devnet in {self.home} and no --network config: run "
                             "'shardkey devnet up' first")
        return Deployment.load(self.devnet.deployment_path)

    @cached_property
    def fee_ceiling(self) -> float | None:
        """Ceiling of a transaction's max fee per gas, in gwei: ``--max-fee-gwei``, else the
        ``--network`` file's ``max_fee_gwei``, else none."""
        if self.max_fee_gwei is not None:
            return self.max_fee_gwei
        value = self.network.get("max_fee_gwei")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise UsageError(f"--network {self.network_file}: max_fee_gwei must be a positive number "
                             f"of gwei, got {value!r}")
        return float(value)

    @cached_property
    def chain(self) -> ShardKeyChain:
        from shardkey.chain.bindings import bind
        from shardkey.heap import freeze_long_lived

        chain = bind(self.deployment, self.fee_ceiling)
        freeze_long_lived()  # the command's libraries are loaded: collect garbage from here on
        return chain

    def _named_keys(self) -> dict[str, Path]:
        keys: dict[str, Path] = {}
        if self.devnet is not None:
            keys.update({n: Path(v["key_file"]) for n, v in self.devnet.data["accounts"].items()})
        accounts = self.network.get("accounts") or {}
        assert isinstance(accounts, dict)  # checked by network
        for name, entry in accounts.items():
            value = entry.get("keystore") if isinstance(entry, dict) else entry
            if not value:
                raise UsageError(f"--network {self.network_file}: accounts.{name} names no keystore")
            keys[str(name)] = self._network_path(value)
        return keys

    def _passphrase_source(self, spec: str) -> Path | None:
        accounts = self.network.get("accounts") or {}
        assert isinstance(accounts, dict)
        entry = accounts.get(spec)
        if isinstance(entry, dict) and entry.get("passphrase_file"):
            return self._network_path(entry["passphrase_file"])
        if self.network.get("passphrase_file"):
            return self._network_path(self.network["passphrase_file"])
        return self.passphrase_file

    def account(self, spec: str) -> LocalAccount:
        """``--as``: a devnet/network account name, or a path to a key file or keystore."""
        if spec in self._accounts:
            return self._accounts[spec]
        from shardkey.keys import load_account_file

        path = self._named_keys().get(spec)
        if path is None:
            path = Path(spec)
            if not path.exists():
                known = ", ".join(sorted(self._named_keys())) or "none"
                raise UsageError(f"--as {spec!r}: not an account name (known: {known}) nor a key file")
        source = self._passphrase_source(spec)
        account = load_account_file(path, lambda: cli_passphrase(source))
        self._accounts[spec] = account
        return account

    def _address_book(self) -> dict[str, str]:
        """Name to address of ``addresses``: an address, or a public key file read in clear."""
        from eth_utils.address import is_address, to_checksum_address

        from shardkey.keys import inspect_key_file

        book: dict[str, str] = {}
        entries = self.network.get("addresses") or {}
        assert isinstance(entries, dict)
        for name, value in entries.items():
            text = str(value)
            if is_address(text):
                book[str(name)] = to_checksum_address(text)
                continue
            address = inspect_key_file(self._network_path(text)).address
            if address is None:
                raise UsageError(f"--network {self.network_file}: addresses.{name}: {text} names "
                                 "no account address")
            book[str(name)] = address
        return book

    def resolve(self, name: str) -> str:
        """An account name or 0x address to a checksummed address (for policy files).

        Never decrypts a keystore: other people are known by address only.
        """
        from eth_utils.address import is_address, to_checksum_address

        from shardkey.keys import inspect_key_file

        if is_address(name):
            return to_checksum_address(name)
        if self.devnet is not None and name in self.devnet.data["accounts"]:
            return to_checksum_address(self.devnet.data["accounts"][name]["address"])
        book = self._address_book()
        if name in book:
            return book[name]
        path = self._named_keys().get(name)
        if path is not None:
            address = inspect_key_file(path).address
            if address is not None:
                return address
        raise UsageError(f"unknown account {name!r}")

    def names(self) -> dict[str, str]:
        """Address to account name, for display."""
        names: dict[str, str] = {}
        if self.devnet is not None:
            names = self.devnet.address_names()
            for entry in self.devnet.data.get("holders", []):
                names.setdefault(entry["address"], entry["name"])
        if self.network:
            for name, address in self._address_book().items():
                names.setdefault(address, name)
        return names

    @property
    def requests_dir(self) -> Path:
        return self.home / "requests"


def cli_passphrase(source: Path | None = None, confirm: bool = False) -> str:
    """The passphrase of an interactive command: ``source``, else $SHARDKEY_PASSWORD, else a
    prompt when stdin is a terminal (:func:`shardkey.keys.read_passphrase`)."""
    from shardkey.keys import read_passphrase

    def ask() -> str:
        if not click.get_text_stream("stdin").isatty():
            raise UsageError(f"keystore passphrase needed: set {PASSWORD_ENV} or pass --passphrase-file")
        return str(click.prompt("Keystore passphrase", hide_input=True, confirmation_prompt=confirm))

    return read_passphrase(source, PASSWORD_ENV, ask)


def default_home() -> Path:
    """``$SHARDKEY_HOME``, else ``.shardkey`` in the current folder."""
    return Path(os.environ.get("SHARDKEY_HOME") or ".shardkey").resolve()


DEVNET_HINT = "is the chain running? ('shardkey devnet up' starts a local one)"


def connection_hint(env: object) -> str:
    """What to check when the RPC endpoint did not answer, worded for where it came from.

    The devnet hint only when the RPC is the devnet's; a ``--network`` deployment names its
    endpoint (redacted: URLs carry API keys) and the file it came from.
    """
    from shardkey.chain.deployment import Deployment
    from shardkey.chain.rpc import redact_url
    from shardkey.devnet.process import is_running

    if not isinstance(env, Env):
        return "the chain's RPC endpoint did not answer"
    if env.deployment_file is not None or env.network_file is not None:
        source = (f"--deployment {env.deployment_file}" if env.deployment_file is not None
                  else f"deployment of --network {env.network_file}")
        try:
            deployment = (Deployment.load(env.deployment_file) if env.deployment_file is not None
                          else env.deployment)
            where = redact_url(deployment.rpc_url)
        except Exception:  # the hint must never hide the error it explains
            where = "the deployment's rpc_url"
        return (f"the RPC endpoint {where} ({source}) did not answer or kept refusing: check that "
                "node or provider, or set the deployment's rpc_url (or rpc_urls) to one that works")
    devnet = env.devnet
    if devnet is not None and not is_running(int(devnet.data["anvil"]["pid"])):
        return (f"the devnet's anvil in {env.home} is not running (its chain state is lost): "
                "'shardkey devnet down' then 'shardkey devnet up' starts a new devnet")
    return DEVNET_HINT
