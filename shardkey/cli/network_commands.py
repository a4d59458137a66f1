"""``shardkey network deploy``: the contracts on any EVM chain, and the deployment file.

Everything is checked before the first transaction (output file, KOS key, KOS addresses,
deployer keystore, chain id, funds), so a refused deploy costs nothing and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import click
from eth_utils.address import is_address, to_checksum_address

from shardkey.chain.connection import ChainClient
from shardkey.chain.deploy import deploy_all
from shardkey.chain.funds import funds_problem
from shardkey.cli.commands import cli, pass_env
from shardkey.cli.context import Env
from shardkey.cli.key_commands import command_passphrase, passphrase_option
from shardkey.cli.output import emit
from shardkey.errors import UsageError
from shardkey.keys import KeyFileError, inspect_key_file, load_account_file


def address_of(spec: str, option: str) -> str:
    """An address given as ``0x..`` or as a key file whose public part names it."""
    if is_address(spec):
        return to_checksum_address(spec)
    try:
        address = inspect_key_file(Path(spec)).address
    except KeyFileError as exc:
        raise UsageError(f"{option} {spec!r}: not an address, and {exc}") from None
    if address is None:
        raise UsageError(f"{option} {spec}: an HPKE keystore, not an account")
    return address


def kos_public_key(hpke_file: Path | None, hex_key: str | None) -> bytes:
    """The KOS HPKE public key from its keystore's clear header, or from hex."""
    if (hpke_file is None) == (hex_key is None):
        raise UsageError("give the KOS HPKE public key: --kos-hpke-key FILE (from `shardkey kos init` "
                         "or `shardkey keys new --kind hpke`) or --kos-public-key HEX, not both")
    if hpke_file is not None:
        info = inspect_key_file(hpke_file)
        if info.public_key is None:
            raise UsageError(f"--kos-hpke-key {hpke_file}: an account keystore, not an HPKE keystore")
        return info.public_key
    assert hex_key is not None
    try:
        key = bytes.fromhex(hex_key.removeprefix("0x"))
    except ValueError:
        raise UsageError("--kos-public-key: not hex") from None
    if not key:
        raise UsageError("--kos-public-key: empty")
    return key


@cli.group()
def network() -> None:
    """Deploy ShardKey to a chain."""


@network.command("deploy")
@click.option("--rpc", "rpc_url", required=True, help="JSON-RPC endpoint of the chain.")
@click.option("--as", "as_", required=True, help="The deployer's account keystore: becomes admin.")
@click.option("--kos-hpke-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The KOS HPKE keystore (only its public part is read).")
@click.option("--kos-public-key", "kos_public_key_hex", default=None,
              help="The KOS HPKE public key as hex, instead.")
@click.option("--kos-address", "kos_addresses", multiple=True,
              help="A KOS replica account (address or key file) to grant KOS_ROLE; repeatable.")
@click.option("--chain-id", type=click.IntRange(1), default=None,
              help="Refuse unless the RPC serves this chain.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@passphrase_option
@pass_env
def network_deploy(env: Env, rpc_url: str, as_: str, kos_hpke_key: Path | None,
                   kos_public_key_hex: str | None, kos_addresses: tuple[str, ...], chain_id: int | None,
                   output: Path, as_json: bool, passphrase_file: Path | None) -> None:
    """Deploy the four contracts (the KOS committee holds KOS_ROLE), grant KOS_ROLE to the KOS
    accounts, write the deployment file (-o)."""
    if output.exists():
        raise UsageError(f"-o {output}: already exists; a deployment file is never overwritten")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: folder {output.parent} does not exist")
    public_key = kos_public_key(kos_hpke_key, kos_public_key_hex)
    replicas = [address_of(spec, "--kos-address") for spec in kos_addresses]
    key_file = Path(as_)
    if not key_file.is_file():
        raise UsageError(f"--as {as_}: no such keystore file")
    deployer = load_account_file(key_file, lambda: command_passphrase(env, passphrase_file))
    client = ChainClient(rpc_url, max_fee_gwei=env.fee_ceiling)
    if chain_id is not None and client.chain_id != chain_id:
        raise UsageError(f"--rpc {client.where} serves chain {client.chain_id}, not --chain-id {chain_id}")
    problem = funds_problem(client, deployer.address)
    if problem:
        raise UsageError(f"--as {as_}: {problem}; fund it before deploying")
    deployment = deploy_all(client, deployer, replicas, public_key)
    deployment.save(output)
    emit({"deployment": str(output), "chain_id": deployment.chain_id,
          "start_block": deployment.start_block, "admin": deployer.address,
          "kos_role": replicas, **deployment.addresses}, as_json)
