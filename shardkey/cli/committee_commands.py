"""``shardkey kos committee show|start``: the threshold KOS committee on chain.

A member operator runs ``shardkey kos init`` (an account and an HPKE keystore) and gives the
committee admin its account and HPKE public key; the admin starts a new committee epoch with
every member and the threshold. New datasets are dealt to the newest epoch at once; datasets
already stored stay with their epoch until their owner re-deals them (docs/DESIGN.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shardkey.cli.commands import kos, pass_env
from shardkey.cli.context import Env
from shardkey.cli.lifecycle import admin_chain, admin_options, require_funds
from shardkey.cli.network_commands import address_of
from shardkey.cli.output import emit
from shardkey.errors import UsageError

if TYPE_CHECKING:
    from shardkey.chain.committee import KosCommittee

X25519_KEY_LEN = 32
HYBRID_KEY_LEN = 1216  # ML-KEM-768 + X25519 (the contract accepts only these two)


@kos.group("committee")
def committee() -> None:
    """The KOS committee: members, HPKE keys and threshold per epoch (on chain)."""


def member_public_key(spec: str, option: str) -> bytes:
    """An HPKE public key given as 0x-hex or as the member's HPKE keystore (its clear header)."""
    from shardkey.keys import KeyFileError, inspect_key_file

    if spec.startswith("0x"):
        try:
            key = bytes.fromhex(spec[2:])
        except ValueError:
            raise UsageError(f"{option}: {spec[:12]}.. is not hex") from None
    else:
        try:
            found = inspect_key_file(Path(spec)).public_key
        except KeyFileError as exc:
            raise UsageError(f"{option} {spec}: {exc}") from None
        if found is None:
            raise UsageError(f"{option} {spec}: an account keystore, not an HPKE keystore")
        key = found
    if len(key) not in (X25519_KEY_LEN, HYBRID_KEY_LEN):
        raise UsageError(f"{option}: an HPKE public key is {X25519_KEY_LEN} (X25519) or {HYBRID_KEY_LEN} "
                         f"(ML-KEM-768+X25519) bytes, got {len(key)}")
    return key


def parse_member(spec: str) -> tuple[str, bytes]:
    """``ACCOUNT=HPKE``: an address or account key file, and a 0x-hex key or HPKE keystore."""
    account, sep, key = spec.partition("=")
    if not sep or not account or not key:
        raise UsageError(f"--member {spec!r}: write ACCOUNT=HPKE_KEY (address or account key file, then "
                         "0x-hex public key or HPKE keystore, both from `shardkey kos init`)")
    return address_of(account, "--member"), member_public_key(key, "--member")


@committee.command("start")
@click.option("--member", "members", multiple=True, required=True, metavar="ACCOUNT=HPKE_KEY",
              help="A member, in index order (share x = index + 1); repeat for every member.")
@click.option("--threshold", type=click.IntRange(1, 255), required=True,
              help="t_k: how many members must release for a wrap key to be rebuilt.")
@click.option("--json", "as_json", is_flag=True)
@admin_options
@pass_env
def committee_start(env: Env, members: tuple[str, ...], threshold: int, as_json: bool, as_: str,
                    deployment: Path | None) -> None:
    """Admin: start the next committee epoch (new datasets are dealt to it at once)."""
    parsed = [parse_member(spec) for spec in members]
    accounts = [a for a, _ in parsed]
    duplicate = next((a for a in accounts if accounts.count(a) > 1), None)
    if duplicate:
        raise UsageError(f"--member: {duplicate} is given twice")
    if threshold > len(parsed):
        raise UsageError(f"--threshold {threshold}: more than the {len(parsed)} member(s) given")
    chain = admin_chain(env, deployment)
    contract: KosCommittee = chain.committee
    admin = env.account(as_)
    require_funds(chain, admin.address, f"--as {as_}")
    contract.start_epoch(admin, accounts, [k for _, k in parsed], threshold)
    _emit_epoch(_epoch_report(contract, None), as_json)


@committee.command("show")
@click.option("--epoch", type=click.IntRange(min=1), default=None, help="Default: the newest epoch.")
@click.option("--deployment", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Deployment file (default: from --network or the devnet).")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def committee_show(env: Env, epoch: int | None, deployment: Path | None, as_json: bool) -> None:
    """The members (index, account, HPKE key fingerprint) and threshold of an epoch."""
    contract: KosCommittee = admin_chain(env, deployment).committee
    if contract.current_epoch() == 0:
        raise UsageError("no committee epoch was started yet: `shardkey kos committee start --member "
                         "ACCOUNT=HPKE_KEY ... --threshold T --as ADMIN`")
    _emit_epoch(_epoch_report(contract, epoch), as_json)


def _epoch_report(contract: KosCommittee, epoch: int | None) -> dict[str, Any]:
    from shardkey.chain.errors import ChainError

    try:
        c = contract.committee(epoch)
    except ChainError:
        newest = contract.current_epoch()
        raise UsageError(f"--epoch {epoch}: no such committee epoch (newest: {newest})") from None
    return {"epoch": c.epoch, "newest_epoch": contract.current_epoch(), "threshold": c.threshold,
            "members": [{"index": i, "address": m, "hpke_key_bytes": len(k),
                         "hpke_key_prefix": "0x" + k[:8].hex()}
                        for i, (m, k) in enumerate(zip(c.members, c.hpke_public_keys, strict=True))]}


def _emit_epoch(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(report, True)
        return
    title = (f"committee epoch {report['epoch']}: threshold {report['threshold']} of {len(report['members'])}"
             f" (newest epoch {report['newest_epoch']})")
    emit(report["members"], False, ["index", "address", "hpke_key_bytes", "hpke_key_prefix"], title=title)
