"""``shardkey kos init|status`` and ``shardkey kos role grant|revoke`` (``kos run`` is in commands).

Every KOS is a member of the threshold committee. ``init`` makes a member's keys and settings;
the committee admin then names the member (its account and HPKE public key) in
``shardkey kos committee start``. ``status`` reports one member (``--config``) or every member of
the devnet in ``--home`` (running, index, key, last block seen, releases, denials).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shardkey.cli.commands import DEFAULT_HPKE_SUITE, HPKE_SUITES, kos, pass_env
from shardkey.cli.context import Env
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
from shardkey.cli.output import emit
from shardkey.devnet.process import is_running
from shardkey.errors import UsageError

if TYPE_CHECKING:
    from shardkey.chain.bindings import ShardKeyChain

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
              help="Use this HPKE keystore instead of making one.")
@click.option("--account-key", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Use this account keystore instead of making one.")
@click.option("--confirmations", type=click.IntRange(0, 256), default=None,
              help="Blocks deep an event must be (default: 1 on the devnet, 12 elsewhere).")
@click.option("--json", "as_json", is_flag=True)
@passphrase_option
def kos_init(folder: Path, deployment: Path, hpke_suite: str, hpke_keystore: Path | None,
             account_key: Path | None, confirmations: int | None, as_json: bool,
             passphrase_file: Path | None) -> None:
    """Make DIR (0700): a committee member's account and HPKE keystores, state folder (0700), kos.toml."""
    from shardkey.keys import inspect_key_file

    folder = folder.resolve()
    config = new_service_folder(folder, CONFIG_NAME)
    passphrase = init_passphrase(passphrase_file, PASSPHRASE_ENV)
    account_path, hpke_path = init_keys(folder, "kos.hpke.json", passphrase, hpke_suite, account_key,
                                        hpke_keystore)
    address = inspect_key_file(account_path).address
    state_dir = folder / "state"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    write_config(config, {
        "deployment": deployment.resolve(), "account_key": account_path, "hpke_keystore": hpke_path,
        "passphrase_file": passphrase_file.resolve() if passphrase_file else None,
        "state_dir": state_dir, "confirmations": confirmations})
    public_key = inspect_key_file(hpke_path).public_key or b""
    emit({"config": str(config), "address": address, "hpke_keystore": str(hpke_path),
          "hpke_public_key": "0x" + public_key.hex(),
          "next": f"fund {address}; the committee admin names this member with `shardkey kos committee "
                  f"start --member {address}={hpke_path}` beside the others"},
         as_json)


@kos.group("role")
def kos_role() -> None:
    """Grant or revoke KOS_ROLE on the RetrievalCoordinator (admin). Only the KosCommittee contract
    should hold it: any other holder could issue tokens without the committee."""


KOS_ROLE = Role("KOS_ROLE", "RetrievalCoordinator",
                holds=lambda chain, a: chain.retrievals.has_kos_role(a),
                is_admin=lambda chain, a: chain.retrievals.is_admin(a),
                grant=lambda chain, admin, a: chain.retrievals.grant_kos_role(admin, a),
                revoke=lambda chain, admin, a: chain.retrievals.revoke_kos_role(admin, a))


role_commands(kos_role, KOS_ROLE)


@kos.command("status")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The member's settings file (from `shardkey kos init`); without it, "
                   "every KOS committee member of the devnet in --home.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def kos_status(env: Env, config: Path | None, as_json: bool) -> None:
    """A member's committee membership and key, balance, last block seen and lag, heartbeat, and its
    releases and denials on chain."""
    from shardkey.keys import inspect_key_file

    if config is None:
        emit(_devnet_members(env), as_json, columns=MEMBER_COLUMNS)
        return
    settings = _settings(config)
    chain = service_chain(settings)
    address = service_address(settings)
    public_key = inspect_key_file(settings.hpke_keystore).public_key
    report: dict[str, Any] = {"address": address, "chain_id": chain.deployment.chain_id,
                              **member_record(chain, address, public_key)}
    report.update(state_progress(chain, settings.state_dir, address,
                                 {"pending_requests": "pending", "releases_sent": "releases"}))
    emit(report, as_json)


MEMBER_COLUMNS = ["name", "address", "running", "member_index", "hpke_key_matches", "last_block_seen",
                  "lag_blocks", "releases", "denials", "heartbeat_ok"]


def member_record(chain: ShardKeyChain, address: str, public_key: bytes | None) -> dict[str, Any]:
    """A member's standing in the committee's current epoch, and its releases and denials on chain."""
    committee = chain.committee
    epoch = committee.current_epoch()
    record = committee.committee(epoch) if epoch else None
    index = record.members.index(address) if record and address in record.members else None
    start = chain.deployment.start_block
    return {"committee_epoch": epoch, "threshold": record.threshold if record else None,
            "member_index": index,
            "hpke_key_matches": index is not None and record is not None
            and record.hpke_public_keys[index] == public_key,
            "releases": len(committee.contract.get_logs("SharesReleased", start, member=address)),
            "denials": len(committee.contract.get_logs("ReleaseDenied", start, member=address))}


def _devnet_members(env: Env) -> list[dict[str, Any]]:
    info = env.devnet
    members = (info.data.get("kos_members") or []) if info else []
    if info is None or not members:
        raise UsageError(f"no devnet in {env.home} ('shardkey devnet up' starts one); pass --config FILE "
                         "for a member elsewhere")
    chain = env.chain
    rows = []
    for entry in members:
        public_key = bytes.fromhex(str(entry.get("hpke_public_key", "")))
        row: dict[str, Any] = {"name": entry["name"], "address": entry["address"],
                               "running": bool(entry.get("pid")) and is_running(int(entry["pid"]))}
        row.update(member_record(chain, str(entry["address"]), public_key))
        row.update(state_progress(chain, Path(entry["state_dir"]), str(entry["address"]),
                                  {"pending_requests": "pending"}))
        rows.append(row)
    return rows
