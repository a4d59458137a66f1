"""``shardkey keys new|list|show``: Ethereum V3 keystores and HPKE keystores.

``show`` and ``list`` print public parts only (address, HPKE public key and suite) and never
ask for a passphrase; ``new`` takes it by the one rule of :func:`shardkey.keys.read_passphrase`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shardkey.cli.commands import DEFAULT_HPKE_SUITE, HPKE_SUITES, cli, pass_env
from shardkey.cli.context import Env, cli_passphrase
from shardkey.cli.output import emit
from shardkey.errors import UsageError

if TYPE_CHECKING:
    from shardkey.keys import KeyFileInfo

KEY_KINDS = ("eth", "hpke")
LIST_COLUMNS = ["file", "kind", "address", "public_key", "suite"]


def passphrase_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--passphrase-file`` of one command (else the global one, $SHARDKEY_PASSWORD, a prompt)."""
    return click.option("--passphrase-file", "passphrase_file", default=None,
                        type=click.Path(path_type=Path, dir_okay=False),
                        help="File holding the keystore passphrase.")(fn)


def command_passphrase(env: Env, passphrase_file: Path | None, confirm: bool = False) -> str:
    """The passphrase a command was given (its option, the global option, env, prompt)."""
    return cli_passphrase(passphrase_file or env.passphrase_file, confirm=confirm)


def refuse_existing(path: Path, what: str = "-o") -> None:
    """A key file is never overwritten (its key may hold funds or custody)."""
    if path.exists():
        raise UsageError(f"{what} {path}: already exists; keys are never overwritten, choose another file")
    if not path.parent.is_dir():
        raise UsageError(f"{what} {path}: folder {path.parent} does not exist")


def make_key(kind: str, output: Path, passphrase: str, suite_name: str = DEFAULT_HPKE_SUITE) -> KeyFileInfo:
    """Create a new key of ``kind`` in ``output`` (0600) and return its public part."""
    from eth_account import Account

    from shardkey.crypto.hpke import HpkePrivateKey, parse_suite
    from shardkey.keys import inspect_key_file, save_eth_keystore, save_hpke_keystore

    refuse_existing(output)
    if kind == "eth":
        save_eth_keystore(output, Account.create(), passphrase)
    else:
        save_hpke_keystore(output, HpkePrivateKey.generate(os.urandom, parse_suite(suite_name)), passphrase)
    return inspect_key_file(output)


def _display(info: KeyFileInfo) -> dict[str, Any]:
    row = info.to_json()
    if info.public_key is not None:
        row["public_key"] = "0x" + info.public_key.hex()
    return row


@cli.group()
def keys() -> None:
    """Make and inspect key files (public parts only)."""


@keys.command("new")
@click.option("--kind", required=True, type=click.Choice(KEY_KINDS),
              help="eth: an account (V3 keystore); hpke: a sealing key (KOS, holders).")
@click.option("--hpke-suite", type=click.Choice(HPKE_SUITES), default=DEFAULT_HPKE_SUITE, show_default=True,
              help="Suite of an HPKE key (x25519: not post-quantum).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@passphrase_option
@pass_env
def keys_new(env: Env, kind: str, hpke_suite: str, output: Path, as_json: bool,
             passphrase_file: Path | None) -> None:
    """Create a key file encrypted under a passphrase; prints its public part."""
    refuse_existing(output)
    info = make_key(kind, output, command_passphrase(env, passphrase_file, confirm=True), hpke_suite)
    emit(_display(info), as_json)


@keys.command("show")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def keys_show(file: Path, as_json: bool) -> None:
    """The public part of a key file: address, or HPKE public key and suite."""
    from shardkey.keys import inspect_key_file

    emit(_display(inspect_key_file(file)), as_json)


@keys.command("list")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def keys_list(folder: Path, as_json: bool) -> None:
    """Every key file in DIR (other files are skipped), public parts only."""
    from shardkey.keys import KeyFileError, inspect_key_file

    if not folder.is_dir():
        raise UsageError(f"DIR {folder}: no such folder")
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            rows.append(_display(inspect_key_file(path)))
        except KeyFileError:
            continue
    emit(rows, as_json, columns=LIST_COLUMNS)
