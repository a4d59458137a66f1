"""What every command needs: the home folder, the network, accounts by name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import click
import yaml
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.deployment import Deployment
from shardkey.devnet.network import DevnetInfo
from shardkey.errors import UsageError
from shardkey.keys import load_account_file


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
    _accounts: dict[str, LocalAccount] = field(default_factory=dict)

    @cached_property
    def devnet(self) -> DevnetInfo | None:
        return DevnetInfo.load(self.home)

    @cached_property
    def network(self) -> dict[str, object]:
        """The ``--network`` config: ``{deployment: FILE, accounts: {name: keystore}}``."""
        if self.network_file is None:
            return {}
        try:
            data = yaml.safe_load(self.network_file.read_text())
        except FileNotFoundError:
            raise UsageError(f"--network {self.network_file}: no such file") from None
        except yaml.YAMLError as exc:
            raise UsageError(f"--network {self.network_file}: not valid YAML ({exc})") from None
        if not isinstance(data, dict) or set(data) - {"deployment", "accounts"} or "deployment" not in data:
            raise UsageError(f"--network {self.network_file}: expected keys 'deployment' and 'accounts'")
        return data

    @cached_property
    def deployment(self) -> Deployment:
        if self.network:
            path = Path(str(self.network["deployment"]))
            if not path.is_absolute() and self.network_file is not None:
                path = self.network_file.parent / path
            return Deployment.load(path)
        if self.devnet is None:
            raise UsageError(f"no devnet in {self.home} and no --network config: run "
                             "'shardkey devnet up' first")
        return Deployment.load(self.devnet.deployment_path)

    @cached_property
    def chain(self) -> ShardKeyChain:
        return ShardKeyChain(self.deployment)

    def _named_keys(self) -> dict[str, Path]:
        keys: dict[str, Path] = {}
        if self.devnet is not None:
            keys.update({n: Path(v["key_file"]) for n, v in self.devnet.data["accounts"].items()})
        accounts = self.network.get("accounts") or {}
        if isinstance(accounts, dict):
            keys.update({str(n): Path(str(p)) for n, p in accounts.items()})
        return keys

    def account(self, spec: str) -> LocalAccount:
        """``--as``: a devnet/network account name, or a path to a key file or keystore."""
        if spec in self._accounts:
            return self._accounts[spec]
        path = self._named_keys().get(spec)
        if path is None:
            path = Path(spec)
            if not path.exists():
                known = ", ".join(sorted(self._named_keys())) or "none"
                raise UsageError(f"--as {spec!r}: not an account name (known: {known}) nor a key file")
        account = load_account_file(path, _passphrase)
        self._accounts[spec] = account
        return account

    def resolve(self, name: str) -> str:
        """An account name or 0x address to a checksummed address (for policy files)."""
        if is_address(name):
            return to_checksum_address(name)
        if self.devnet is not None and name in self.devnet.data["accounts"]:
            return to_checksum_address(self.devnet.data["accounts"][name]["address"])
        if name in self._named_keys():
            return self.account(name).address
        raise UsageError(f"unknown account {name!r}")

    def names(self) -> dict[str, str]:
        """Address to account name, for display."""
        if self.devnet is None:
            return {}
        names = self.devnet.address_names()
        for entry in self.devnet.data.get("holders", []):
            names.setdefault(entry["address"], entry["name"])
        return names

    @property
    def requests_dir(self) -> Path:
        return self.home / "requests"


def _passphrase() -> str:
    value = os.environ.get("SHARDKEY_PASSWORD")
    if value is not None:
        return value
    if not click.get_text_stream("stdin").isatty():
        raise UsageError("keystore passphrase needed: set SHARDKEY_PASSWORD")
    return str(click.prompt("Keystore passphrase", hide_input=True))


def default_home() -> Path:
    """``$SHARDKEY_HOME``, else ``.shardkey`` in the current folder."""
    return Path(os.environ.get("SHARDKEY_HOME") or ".shardkey").resolve()


DEVNET_HINT = "is the chain running? ('shardkey devnet up' starts a local one)"


def connection_hint(env: object) -> str:
    """What to check when the RPC endpoint did not answer, worded for where it came from.

    The devnet hint only when the RPC is the devnet's; a ``--network`` deployment names its
    endpoint (redacted: URLs carry API keys) and the file it came from.
    """
    from shardkey.chain.rpc import redact_url
    from shardkey.devnet.process import is_running

    if not isinstance(env, Env):
        return "the chain's RPC endpoint did not answer"
    if env.network_file is not None:
        try:
            where = redact_url(env.deployment.rpc_url)
        except Exception:  # the hint must never hide the error it explains
            where = "the deployment's rpc_url"
        return (f"the RPC endpoint {where} (deployment of --network {env.network_file}) did not "
                "answer: check that node, or set the deployment's rpc_url to one that runs")
    devnet = env.devnet
    if devnet is not None and not is_running(int(devnet.data["anvil"]["pid"])):
        return (f"the devnet's anvil in {env.home} is not running (its chain state is lost): "
                "'shardkey devnet down' then 'shardkey devnet up' starts a new devnet")
    return DEVNET_HINT
