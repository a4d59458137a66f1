"""``shardkey kos init|status`` and ``shardkey kos role grant|revoke`` (``kos run`` is in commands).

``init`` comes first on a new network: the deployment file carries the KOS HPKE public
key, so the KOS key exists before ``shardkey network deploy`` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from shardkey.cli.commands import DEFAULT_HPKE_SUITE, HPKE_SUITES, kos
from shardkey.cli.key_commands import passphrase_option
from shardkey.cli.lifecycle import (
    Role,
    init_keys,
    init_passphrase,
    new_service_folder,
    role_commands,
    service_address,
    service_chain,
    state_progress,
    write_config,
)
from shardkey.cli.network_commands import address_of
from shardkey.cli.output import emit
from shardkey.errors import UsageError
from shardkey.keys import inspect_key_file

PASSPHRASE_ENV = "SHARDKEY_KOS_PASSPHRASE"  # noqa: S105 - a variable name (the service's)
CONFIG_NAME = "kos.toml"


def _settings(config: Path) -> Any:
    from kos.settings import load

    return load(config)


@kos.command("init")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--deployment", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where the deployment file is or will be (it may not exist yet).")
@click.option("--hpke-suite", type=click.Choice(HPKE_SUITES), default=DEFAULT_HPKE_SUITE, show_default=True)
@click.option("--hpke-keystore", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Another replica's KOS HPKE keystore (every replica shares one key).")
@click.option("--account-key", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Use this account keystore instead of making one.")
@click.option("--replica", "replicas", multiple=True,
              help="Every replica's account (address or key file) in leader order; repeatable.")
@click.option("--confirmations", type=click.IntRange(0, 256), default=None,
              help="Blocks deep an event must be (default: 1 on the devnet, 12 elsewhere).")
@click.option("--json", "as_json", is_flag=True)
@passphrase_option
def kos_init(folder: Path, deployment: Path, hpke_suite: str, hpke_keystore: Path | None,
             account_key: Path | None, replicas: tuple[str, ...], confirmations: int | None,
             as_json: bool, passphrase_file: Path | None) -> None:
    """Make DIR (0700): account and KOS HPKE keystores, state folder (0700), kos.toml."""
    folder = folder.resolve()
    replica_addresses = [address_of(spec, "--replica") for spec in replicas]
    config = new_service_folder(folder, CONFIG_NAME)
    passphrase = init_passphrase(passphrase_file, PASSPHRASE_ENV)
    account_path, hpke_path = init_keys(folder, "kos.hpke.json", passphrase, hpke_suite, account_key,
                                        hpke_keystore)
    address = inspect_key_file(account_path).address
    if replica_addresses and address not in replica_addresses:
        raise UsageError(f"--replica: the list does not name this replica's account {address}")
    state_dir = folder / "state"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    write_config(config, {
        "deployment": deployment.resolve(), "account_key": account_path, "hpke_keystore": hpke_path,
        "passphrase_file": passphrase_file.resolve() if passphrase_file else None,
        "state_dir": state_dir, "confirmations": confirmations,
        "replicas": replica_addresses or None})
    public_key = inspect_key_file(hpke_path).public_key or b""
    emit({"config": str(config), "address": address, "hpke_keystore": str(hpke_path),
          "hpke_public_key": "0x" + public_key.hex(),
          "next": f"fund {address}; the deployer passes --kos-hpke-key {hpke_path} (or "
                  f"--kos-public-key) and --kos-address {address} to `shardkey network deploy`"},
         as_json)


@kos.group("role")
def kos_role() -> None:
    """Grant or revoke KOS_ROLE on the RetrievalCoordinator (admin)."""


KOS_ROLE = Role("KOS_ROLE", "RetrievalCoordinator",
                holds=lambda chain, a: chain.retrievals.has_kos_role(a),
                is_admin=lambda chain, a: chain.retrievals.is_admin(a),
                grant=lambda chain, admin, a: chain.retrievals.grant_kos_role(admin, a),
                revoke=lambda chain, admin, a: chain.retrievals.revoke_kos_role(admin, a))


role_commands(kos_role, KOS_ROLE)


@kos.command("status")
@click.option("--config", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The replica's settings file (from `shardkey kos init`).")
@click.option("--json", "as_json", is_flag=True)
def kos_status(config: Path, as_json: bool) -> None:
    """KOS_ROLE, key against the deployment, balance, last block seen and lag, heartbeat."""
    settings = _settings(config)
    chain = service_chain(settings)
    address = service_address(settings)
    public_key = inspect_key_file(settings.hpke_keystore).public_key
    expected = chain.deployment.kos_public_key
    report: dict[str, Any] = {
        "address": address, "chain_id": chain.deployment.chain_id,
        "kos_role": chain.retrievals.has_kos_role(address),
        "hpke_key_matches": bool(expected) and public_key == expected}
    report.update(state_progress(chain, settings.state_dir, address, {"pending_requests": "pending"}))
    emit(report, as_json)
