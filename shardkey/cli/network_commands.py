"""``shardkey network deploy``: the contracts on any EVM chain, and the deployment file.

Everything is checked before the first transaction (output file, deployer keystore, chain id,
funds), so a refused deploy costs nothing and writes nothing. The KosCommittee alone holds
KOS_ROLE; the admin then starts its first epoch (``shardkey kos committee start``).
"""

from __future__ import annotations

from pathlib import Path

import click

from shardkey.cli.commands import cli, pass_env
from shardkey.cli.context import Env
from shardkey.cli.key_commands import command_passphrase, passphrase_option
from shardkey.cli.output import emit
from shardkey.errors import UsageError


def address_of(spec: str, option: str) -> str:
    """An address given as ``0x..`` or as a key file whose public part names it."""
    from eth_utils.address import is_address, to_checksum_address

    from shardkey.keys import KeyFileError, inspect_key_file

    if is_address(spec):
        return to_checksum_address(spec)
    try:
        address = inspect_key_file(Path(spec)).address
    except KeyFileError as exc:
        raise UsageError(f"{option} {spec!r}: not an address, and {exc}") from None
    if address is None:
        raise UsageError(f"{option} {spec}: an HPKE keystore, not an account")
    return address



@cli.group()
def network() -> None:
    """Deploy ShardKey to a chain."""


@network.command("deploy")
@click.option("--rpc", "rpc_url", required=True, help="JSON-RPC endpoint of the chain.")
@click.option("--as", "as_", required=True, help="The deployer's account keystore: becomes admin.")
@click.option("--chain-id", type=click.IntRange(1), default=None,
              help="Refuse unless the RPC serves this chain.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@passphrase_option
@pass_env
def network_deploy(env: Env, rpc_url: str, as_: str, chain_id: int | None, output: Path, as_json: bool,
                   passphrase_file: Path | None) -> None:
    """Deploy the four contracts (the KOS committee holds KOS_ROLE) and write the deployment file
    (-o); then start the committee's first epoch with `shardkey kos committee start`."""
    from shardkey.chain.connection import ChainClient
    from shardkey.chain.deploy import deploy_all
    from shardkey.chain.funds import funds_problem
    from shardkey.keys import load_account_file

    if output.exists():
        raise UsageError(f"-o {output}: already exists; a deployment file is never overwritten")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: folder {output.parent} does not exist")
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
    deployment = deploy_all(client, deployer)
    deployment.save(output)
    emit({"deployment": str(output), "chain_id": deployment.chain_id,
          "start_block": deployment.start_block, "admin": deployer.address,
          "next": "shardkey kos committee start", **deployment.addresses}, as_json)
