"""``shardkey repairer init|run|status`` and ``shardkey repairer role grant|revoke``.

The repair service (``repairer/``, docs/OPERATIONS.md "Running the repair service") needs
an account holding REPAIRER_ROLE on the HolderRegistry and gas; it holds no other key.
``shardkey repair DATASET`` stays the one-off, by-hand repair of one dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from shardkey.cli.commands import cli
from shardkey.cli.key_commands import passphrase_option
from shardkey.cli.lifecycle import (
    Role,
    init_account,
    init_passphrase,
    new_service_folder,
    role_commands,
    service_address,
    service_chain,
    state_progress,
    write_config,
)
from shardkey.cli.output import emit

PASSPHRASE_ENV = "SHARDKEY_REPAIRER_PASSPHRASE"  # noqa: S105 - a variable name (the service's)
CONFIG_NAME = "repairer.toml"
REPAIRER_ROLE = Role("REPAIRER_ROLE", "HolderRegistry",
                     holds=lambda chain, a: chain.holders.is_repairer(a),
                     is_admin=lambda chain, a: chain.holders.is_admin(a),
                     grant=lambda chain, admin, a: chain.holders.grant_repairer_role(admin, a),
                     revoke=lambda chain, admin, a: chain.holders.revoke_repairer_role(admin, a))


def _settings(config: Path) -> Any:
    from repairer.settings import load

    return load(config)


@cli.group()
def repairer() -> None:
    """The repair service: moves the shards of holders that are not Active and repairs stripes at risk."""


@repairer.command("init")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--deployment", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The deployment file (from `shardkey network deploy`).")
@click.option("--account-key", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Use this account keystore instead of making one.")
@click.option("--confirmations", type=click.IntRange(0, 256), default=None,
              help="Blocks deep an event must be (default: 1 on the devnet, 12 elsewhere).")
@click.option("--repair-margin", type=click.IntRange(0, 255), default=None,
              help="Repair a stripe with at most k + MARGIN good shards (default 1).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve /health and /metrics on 127.0.0.1:PORT.")
@click.option("--json", "as_json", is_flag=True)
@passphrase_option
def repairer_init(folder: Path, deployment: Path, account_key: Path | None, confirmations: int | None,
                  repair_margin: int | None, metrics_port: int | None, as_json: bool,
                  passphrase_file: Path | None) -> None:
    """Make DIR (0700): an account keystore, a state folder (0700) and repairer.toml."""
    from shardkey.keys import inspect_key_file

    folder = folder.resolve()
    config = new_service_folder(folder, CONFIG_NAME)
    passphrase = init_passphrase(passphrase_file, PASSPHRASE_ENV)
    account_path = init_account(folder, passphrase, account_key)
    state_dir = folder / "state"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    write_config(config, {
        "deployment": deployment.resolve(), "account_key": account_path,
        "passphrase_file": passphrase_file.resolve() if passphrase_file else None,
        "state_dir": state_dir, "confirmations": confirmations, "repair_margin": repair_margin,
        "metrics_port": metrics_port})
    address = inspect_key_file(account_path).address
    emit({"config": str(config), "address": address,
          "next": f"fund {address}; the HolderRegistry admin runs `shardkey repairer role grant "
                  f"{address}`; then `shardkey repairer run --config {config}`"}, as_json)


@repairer.command("run")
@click.option("--config", required=True, type=click.Path(path_type=Path))
def repairer_run(config: Path) -> None:
    """Run the repair service in the foreground; exits with the service's status."""
    from repairer.service import run
    from shardkey.service.exits import run_service

    raise SystemExit(run_service("repairer", lambda: run(config)))


@repairer.group("role")
def repairer_role() -> None:
    """Grant or revoke REPAIRER_ROLE on the HolderRegistry (admin)."""


role_commands(repairer_role, REPAIRER_ROLE)


@repairer.command("status")
@click.option("--config", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The service's settings file (from `shardkey repairer init`).")
@click.option("--json", "as_json", is_flag=True)
def repairer_status(config: Path, as_json: bool) -> None:
    """REPAIRER_ROLE, balance, last block seen and lag, heartbeat."""
    settings = _settings(config)
    chain = service_chain(settings)
    address = service_address(settings)
    report: dict[str, Any] = {"address": address, "chain_id": chain.deployment.chain_id,
                              "repairer_role": chain.holders.is_repairer(address)}
    report.update(state_progress(chain, settings.state_dir, address, {"datasets_due": "datasets_due"}))
    emit(report, as_json)
