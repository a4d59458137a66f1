"""What the holder and KOS lifecycle commands share: service folders, config files, keys,
the admin's chain, and the chain-side part of a status report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shardkey.cli.context import Env, cli_passphrase
from shardkey.errors import UsageError
from shardkey.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from shardkey.chain.bindings import ShardKeyChain
    from shardkey.crypto.hpke import HpkePrivateKey
    from shardkey.service.startup import AccountSettings, NodeSettings


def new_service_folder(folder: Path, config_name: str) -> Path:
    """Create ``folder`` (0700) for a new service; refuse one that already has a config."""
    config = folder / config_name
    if config.exists():
        raise UsageError(f"{config}: already exists; this folder is already set up")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder")
    if not folder.parent.is_dir():
        raise UsageError(f"{folder}: parent folder {folder.parent} does not exist")
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    return config


def init_passphrase(passphrase_file: Path | None, env_var: str) -> str:
    """The passphrase new keys of a service get: by the rule the service itself unlocks them."""
    from shardkey.keys import read_passphrase

    def ask() -> str:
        return cli_passphrase(None, confirm=True)

    return read_passphrase(passphrase_file, env_var, ask)


def init_account(folder: Path, passphrase: str, account_key: Path | None) -> Path:
    """The service's account keystore: a given one (checked), else a new one in ``folder``."""
    from eth_account import Account

    from shardkey.keys import load_account_file, save_eth_keystore

    if account_key is not None:
        load_account_file(account_key, lambda: passphrase)  # it must open with this passphrase
        return account_key.resolve()
    account_path = folder / "account.json"
    save_eth_keystore(account_path, Account.create(), passphrase)
    return account_path


def init_keys(folder: Path, hpke_name: str, passphrase: str, suite: str,
              account_key: Path | None, hpke_keystore: Path | None) -> tuple[Path, Path]:
    """The service's account keystore and HPKE keystore: given ones (checked), else new ones."""
    from shardkey.crypto.hpke import HpkePrivateKey, parse_suite
    from shardkey.keys import load_hpke_keystore, save_hpke_keystore

    account_path = init_account(folder, passphrase, account_key)
    if hpke_keystore is not None:
        load_hpke_keystore(hpke_keystore, passphrase)
        hpke_path = hpke_keystore.resolve()
    else:
        hpke_path = folder / hpke_name
        save_hpke_keystore(hpke_path, HpkePrivateKey.generate(os.urandom, parse_suite(suite)), passphrase)
    return account_path, hpke_path


def write_config(path: Path, values: Mapping[str, object]) -> None:
    """A flat TOML settings file (strings, numbers, lists of strings), 0600."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = str(value)
        elif isinstance(value, list | tuple):
            text = json.dumps([str(v) for v in value])
        else:
            text = json.dumps(str(value))
        lines.append(f"{key} = {text}")
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode(), mode=0o600)


def service_chain(settings: AccountSettings) -> ShardKeyChain:
    """The chain a service's settings point at (deployment file, ``rpc_url`` override,
    ``max_fee_gwei``)."""
    from shardkey.chain.bindings import bind
    from shardkey.service.startup import load_deployment

    return bind(load_deployment(settings.deployment, settings.rpc_url), settings.max_fee_gwei)


def service_address(settings: AccountSettings) -> str:
    """The service's account address, read from its key file without a passphrase."""
    from shardkey.keys import inspect_key_file

    address = inspect_key_file(settings.account_key).address
    if address is None:
        raise UsageError(f"account_key {settings.account_key}: an HPKE keystore, not an account")
    return address


def unlock_service_keys(settings: NodeSettings, env_var: str) -> tuple[LocalAccount, HpkePrivateKey]:
    """The service's keys, unlocked exactly as the service does (or by a prompt)."""
    from shardkey.service.startup import load_keys

    return load_keys(settings, env_var, lambda: cli_passphrase(None))


def _admin_passphrase(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(Env).passphrase_file = value


def admin_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--as`` (the admin), ``--deployment`` and ``--passphrase-file`` (which unlocks ``--as``)."""
    fn = click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      expose_value=False, callback=_admin_passphrase,
                      help="File holding the admin keystore's passphrase.")(fn)
    fn = click.option("--deployment", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      help="Deployment file (default: from --network or the devnet).")(fn)
    return click.option("--as", "as_", required=True,
                        help="The admin's keystore (or a --network account name).")(fn)


def admin_chain(env: Env, deployment: Path | None) -> ShardKeyChain:
    """``--deployment FILE``, else the ``--network`` / devnet deployment."""
    from shardkey.chain.bindings import bind
    from shardkey.chain.deployment import Deployment

    if deployment is not None:
        loaded = Deployment.load(deployment)
        env.deployment_file = deployment  # connection hints name this file, not the devnet
        return bind(loaded, env.fee_ceiling)
    return env.chain


@dataclass(frozen=True)
class Role:
    """An access-control role an admin grants: how to read, grant and revoke it."""

    name: str  # e.g. "KOS_ROLE"
    contract: str  # the contract it is held on, e.g. "RetrievalCoordinator"
    holds: Callable[[ShardKeyChain, str], bool]
    is_admin: Callable[[ShardKeyChain, str], bool]
    grant: Callable[[ShardKeyChain, LocalAccount, str], object]
    revoke: Callable[[ShardKeyChain, LocalAccount, str], object]


def change_role(env: Env, role: Role, address: str, as_: str, deployment: Path | None, grant: bool) -> None:
    """``<service> role grant|revoke ADDRESS``: checked first (already held, not the admin,
    no gas funds), then sent."""
    chain = admin_chain(env, deployment)
    holds = role.holds(chain, address)
    if holds == grant:
        raise UsageError(f"ADDRESS {address}: {'already holds' if grant else 'does not hold'} {role.name}")
    admin = env.account(as_)
    if not role.is_admin(chain, admin.address):
        raise UsageError(f"--as {as_}: {admin.address} is not the {role.contract} admin")
    require_funds(chain, admin.address, f"--as {as_}")
    (role.grant if grant else role.revoke)(chain, admin, address)
    click.echo(f"{address}: {role.name} {'granted' if grant else 'revoked'}")


def role_commands(group: click.Group, role: Role) -> None:
    """``<group> grant|revoke ADDRESS`` for ``role`` (the admin's; see :func:`change_role`)."""
    from shardkey.cli.network_commands import address_of

    for name, grant in (("grant", True), ("revoke", False)):
        def command(env: Env, account_spec: str, as_: str, deployment: Path | None,
                    grant: bool = grant) -> None:
            change_role(env, role, address_of(account_spec, "ADDRESS"), as_, deployment, grant)

        command.__doc__ = (f"Admin: {name} {role.name} {'to' if grant else 'from'} ADDRESS (an address or "
                           "its account key file).")
        wrapped = admin_options(click.make_pass_decorator(Env)(command))
        group.command(name)(click.argument("account_spec", metavar="ADDRESS")(wrapped))


def require_funds(chain: ShardKeyChain, address: str, who: str) -> None:
    """Refuse to send from an account that cannot pay for gas (before anything is sent)."""
    from shardkey.chain.funds import funds_problem

    problem = funds_problem(chain.client, address)
    if problem:
        raise UsageError(f"{who}: {problem}; fund it first")


def read_cursor(path: Path, key: str = "block") -> tuple[int | None, float | None]:
    """The block a state file (cursor or heartbeat) records under ``key``, and its age in s."""
    if not path.exists():
        return None, None
    try:
        block = json.loads(path.read_text())[key]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{path}: not a {key} record") from None
    return (None if block is None else int(block)), round(time.time() - path.stat().st_mtime, 1)


def state_progress(chain: ShardKeyChain, state_dir: Path, address: str,
                   fields: Mapping[str, str]) -> dict[str, Any]:
    """:func:`chain_progress` from a service's heartbeat (else its cursor) in ``state_dir``,
    plus the heartbeat's state and its ``fields`` (report name -> heartbeat key)."""
    heartbeat = state_dir / "heartbeat.json"
    seen = read_cursor(heartbeat, "cursor_block")  # rewritten every poll, the cursor file less often
    if seen[0] is None:
        seen = read_cursor(state_dir / "cursor.json")
    report = chain_progress(chain, seen, address)
    if heartbeat.exists():
        beat = json.loads(heartbeat.read_text())
        report.update(heartbeat_ok=beat.get("ok"), heartbeat_at=beat.get("updated_at"),
                      last_error=beat.get("error"), **{out: beat.get(key) for out, key in fields.items()})
    return report


def chain_progress(chain: ShardKeyChain, seen: tuple[int | None, float | None],
                   address: str) -> dict[str, Any]:
    """Head, the last block a service handled (and how old that record is), its lag, the balance."""
    from shardkey.chain.funds import balance_wei, format_eth, funds_problem

    head = chain.client.block_number()
    cursor, age = seen
    balance = balance_wei(chain.client, address)
    return {"head_block": head, "last_block_seen": cursor, "seen_record_age_seconds": age,
            "lag_blocks": None if cursor is None else max(0, head - cursor),
            "balance_eth": format_eth(balance), "funded": funds_problem(chain.client, address) is None}
