"""``shardkey holder init|register|activate|update|status|retire`` (``holder run`` is in commands).

The holder's own commands take its settings file (``--config``) and unlock its keys exactly
as the agent does (``passphrase_file``, else ``SHARDKEY_HOLDER_PASSPHRASE``, else a prompt);
``activate`` and ``retire`` are the registry admin's and take ``--as`` the admin's keystore.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import click

from shardkey.chain.errors import TransactionReverted
from shardkey.cli.commands import DEFAULT_HPKE_SUITE, HPKE_SUITES, holder, pass_env
from shardkey.cli.context import Env
from shardkey.cli.key_commands import passphrase_option
from shardkey.cli.lifecycle import (
    admin_chain,
    admin_options,
    init_keys,
    init_passphrase,
    new_service_folder,
    require_funds,
    service_address,
    service_chain,
    state_progress,
    unlock_service_keys,
    write_config,
)
from shardkey.cli.network_commands import address_of
from shardkey.cli.output import emit
from shardkey.errors import UsageError

if TYPE_CHECKING:
    from shardkey.chain.bindings import ShardKeyChain
    from shardkey.chain.model import HolderInfo

PASSPHRASE_ENV = "SHARDKEY_HOLDER_PASSPHRASE"  # noqa: S105 - a variable name (the agent's)
CONFIG_NAME = "holder.toml"


def _settings(config: Path) -> Any:
    from holder_agent.settings import HolderSettings
    from shardkey.settings import load_settings

    return load_settings(HolderSettings, config)


def _record(chain: ShardKeyChain, address: str) -> HolderInfo | None:
    from shardkey.chain.model import HolderStatus

    try:
        info = chain.holders.holder(address)
    except TransactionReverted as exc:
        if exc.error == "HolderNotRegistered":
            return None
        raise
    return None if info.status is HolderStatus.NONE else info


def _check_endpoint(endpoint: str) -> str:
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"--endpoint {endpoint!r}: expected an http:// or https:// URL")
    return endpoint.rstrip("/")


config_option = click.option("--config", required=True, type=click.Path(path_type=Path, dir_okay=False),
                             help="The holder's settings file (from `shardkey holder init`).")


@holder.command("init")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--deployment", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The deployment file (from `shardkey network deploy`).")
@click.option("--listen-port", required=True, type=click.IntRange(1, 65535))
@click.option("--listen-host", default="127.0.0.1", show_default=True)
@click.option("--hpke-suite", type=click.Choice(HPKE_SUITES), default=DEFAULT_HPKE_SUITE, show_default=True)
@click.option("--account-key", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Use this account keystore instead of making one.")
@click.option("--confirmations", type=click.IntRange(0, 1000), default=None,
              help="Blocks deep an event must be (default: 1 on the devnet, 12 elsewhere).")
@click.option("--json", "as_json", is_flag=True)
@passphrase_option
def holder_init(folder: Path, deployment: Path, listen_port: int, listen_host: str, hpke_suite: str,
                account_key: Path | None, confirmations: int | None, as_json: bool,
                passphrase_file: Path | None) -> None:
    """Make DIR (0700): account and HPKE keystores, data folder (0700), holder.toml."""
    from shardkey.keys import inspect_key_file

    folder = folder.resolve()
    config = new_service_folder(folder, CONFIG_NAME)
    passphrase = init_passphrase(passphrase_file, PASSPHRASE_ENV)
    account_path, hpke_path = init_keys(folder, "hpke.json", passphrase, hpke_suite, account_key, None)
    data_dir = folder / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    write_config(config, {
        "deployment": deployment.resolve(), "account_key": account_path, "hpke_keystore": hpke_path,
        "passphrase_file": passphrase_file.resolve() if passphrase_file else None,
        "data_dir": data_dir, "listen_host": listen_host, "listen_port": listen_port,
        "confirmations": confirmations})
    address = inspect_key_file(account_path).address
    emit({"config": str(config), "address": address,
          "hpke_public_key": "0x" + (inspect_key_file(hpke_path).public_key or b"").hex(),
          "next": f"fund {address}, then `shardkey holder register --config {config} ...`"}, as_json)


@holder.command("register")
@config_option
@click.option("--endpoint", required=True, help="Public URL of this holder's HTTP API.")
@click.option("--region", required=True, help="Region label placed in policies (e.g. eu-west).")
@click.option("--lat", required=True, type=click.FloatRange(-90, 90))
@click.option("--lon", required=True, type=click.FloatRange(-180, 180))
def holder_register(config: Path, endpoint: str, region: str, lat: float, lon: float) -> None:
    """Register this holder (endpoint, region, location, HPKE key); it is pending until activated."""
    from shardkey.policy.geo import degrees_to_e6

    endpoint = _check_endpoint(endpoint)
    if not region.strip():
        raise UsageError("--region: empty")
    settings = _settings(config)
    chain = service_chain(settings)
    address = service_address(settings)
    existing = _record(chain, address)
    if existing is not None:
        raise UsageError(f"holder {address} is already registered ({existing.status.name.lower()}); "
                         "use `shardkey holder update` to change its key or endpoint")
    require_funds(chain, address, f"holder {address}")
    account, hpke_key = unlock_service_keys(settings, PASSPHRASE_ENV)
    chain.holders.register(account, hpke_key.public_key_bytes(), endpoint, region.strip(),
                           degrees_to_e6(lat, "lat"), degrees_to_e6(lon, "lon"))
    click.echo(f"holder {address} registered (pending); the registry admin runs "
               f"`shardkey holder activate {address}`")


@holder.command("update")
@config_option
@click.option("--endpoint", default=None, help="New public URL (default: the one on chain).")
def holder_update(config: Path, endpoint: str | None) -> None:
    """Put the keystore's HPKE key (after a rotation) and an endpoint on chain."""
    settings = _settings(config)
    chain = service_chain(settings)
    address = service_address(settings)
    existing = _record(chain, address)
    if existing is None:
        raise UsageError(f"holder {address} is not registered: run `shardkey holder register` first")
    new_endpoint = _check_endpoint(endpoint) if endpoint else existing.endpoint
    require_funds(chain, address, f"holder {address}")
    account, hpke_key = unlock_service_keys(settings, PASSPHRASE_ENV)
    chain.holders.update(account, hpke_key.public_key_bytes(), new_endpoint)
    click.echo(f"holder {address} updated: endpoint {new_endpoint}")


def _admin_transition(env: Env, holder_spec: str, as_: str, deployment: Path | None, verb: str) -> None:
    from shardkey.chain.model import ADMIN_HOLDER_TRANSITIONS

    chain = admin_chain(env, deployment)
    address = address_of(holder_spec, "HOLDER")
    record = _record(chain, address)
    if record is None:
        raise UsageError(f"HOLDER {address}: not registered (the holder runs `shardkey holder register`)")
    allowed = ADMIN_HOLDER_TRANSITIONS[verb]
    if record.status not in allowed:
        starts = ", ".join(sorted(s.name.lower() for s in allowed))
        raise UsageError(f"HOLDER {address}: is {record.status.name.lower()}, cannot {verb} it "
                         f"(only a holder that is {starts})")
    admin = env.account(as_)
    if not chain.holders.is_admin(admin.address):
        raise UsageError(f"--as {as_}: {admin.address} is not the HolderRegistry admin")
    require_funds(chain, admin.address, f"--as {as_}")
    if verb == "activate":
        chain.holders.activate(admin, address)
    elif verb == "fail":
        chain.holders.mark_failed(admin, address)
    else:
        chain.holders.retire(admin, address)
    click.echo(f"holder {address}: {chain.holders.holder(address).status.name.lower()}")


def _transition_command(verb: str, doc: str) -> None:
    @holder.command(verb, help=doc)
    @click.argument("holder_spec", metavar="HOLDER")
    @admin_options
    @pass_env
    def command(env: Env, holder_spec: str, as_: str, deployment: Path | None) -> None:
        _admin_transition(env, holder_spec, as_, deployment, verb)


_transition_command("activate", "Admin: allow HOLDER (address or its account key file) in new datasets.")
_transition_command("retire", "Admin: keep HOLDER out of new datasets (it still serves the ones it holds).")
_transition_command("fail", "Admin: mark HOLDER failed: never placed again, its shards become repairable and "
                    "its fragments should be re-dealt ('shardkey redeal').")


@holder.command("exit")
@config_option
def holder_exit(config: Path) -> None:
    """Announce this holder is leaving (Active -> Exiting on chain); docs/OPERATIONS.md."""
    from shardkey.chain.model import HolderStatus

    settings = _settings(config)
    chain = service_chain(settings)
    address = service_address(settings)
    record = _record(chain, address)
    if record is None or record.status != HolderStatus.ACTIVE:
        state = record.status.name.lower() if record else "not registered"
        raise UsageError(f"holder {address} is {state}: only an Active holder announces its exit")
    require_funds(chain, address, f"holder {address}")
    account, _ = unlock_service_keys(settings, PASSPHRASE_ENV)
    chain.holders.announce_exit(account)
    click.echo(f"holder {address}: exiting. It is never placed again and its agent now refuses "
               "uploads, but keeps serving what it holds: keep it running until its shards are "
               "repaired elsewhere ('shardkey repair') and the owners re-dealt its fragments "
               "('shardkey redeal'). Then the agent retires it on chain (completeExit) and deletes "
               f"its data; 'shardkey holder status --config {config}' shows what is still held.")


def _storage(data_dir: Path) -> dict[str, Any]:
    datasets = data_dir / "datasets"
    folders = [p for p in datasets.iterdir() if p.is_dir()] if datasets.is_dir() else []
    stored = sum(f.stat().st_size for d in folders for f in d.rglob("*") if f.is_file())
    pending_file = data_dir / "pending_custody.json"
    pending = len(json.loads(pending_file.read_text())) if pending_file.exists() else 0
    return {"datasets": len(folders), "stored_bytes": stored, "custody_pending": pending}


@holder.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True)
def holder_status(config: Path, as_json: bool) -> None:
    """On-chain state, stored bytes and datasets, custody pending, last block seen, lag, balance."""
    from shardkey.chain.model import HolderStatus
    from shardkey.keys import inspect_key_file

    settings = _settings(config)
    chain = service_chain(settings)
    address = service_address(settings)
    record = _record(chain, address)
    public_key = inspect_key_file(settings.hpke_keystore).public_key
    report: dict[str, Any] = {"address": address, "chain_id": chain.deployment.chain_id,
                              "status": record.status.name.lower() if record else "unregistered"}
    if record is not None:
        report.update(endpoint=record.endpoint, region=record.region, lat_e6=record.lat_e6,
                      lon_e6=record.lon_e6, hpke_key_matches=record.hpke_public_key == public_key)
    report.update(_storage(settings.data_dir))
    if record is not None and record.status in (HolderStatus.EXITING, HolderStatus.FAILED):
        from holder_agent.leaving import exit_progress
        from holder_agent.storage import committed_datasets

        stored = committed_datasets(settings.data_dir)
        report["exit"] = exit_progress(chain, address, record.status, stored).as_json()
    report.update(state_progress(chain, settings.data_dir, address, {}))
    emit(report, as_json)
