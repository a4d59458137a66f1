"""``shardkey repair DATASET``: rebuild lost shards keylessly and place them elsewhere."""

from __future__ import annotations

import click

from shardkey.cli.commands import cli, pass_env
from shardkey.cli.context import Env, parse_dataset_id
from shardkey.cli.output import emit


@cli.command("repair")
@click.argument("dataset")
@click.option("--as", "as_", default="owner", show_default=True,
              help="the dataset's owner or an account holding REPAIRER_ROLE")
@click.option("--dry-run", is_flag=True, help="print the plan; send nothing")
@click.option("--same-region", is_flag=True,
              help="when no holder of another region is free, place in a region the stripe already uses")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def repair(env: Env, dataset: str, as_: str, dry_run: bool, same_region: bool, as_json: bool) -> None:
    """Rebuild every repairable shard of DATASET (holder not Active, released, or proven bad)
    from k good ones, without any key, and place it on an Active holder of another region.

    Exit 0 done (or nothing to do), 7 a shard could not be repaired (the reason is printed;
    run again once it is fixed: a re-run resumes), 2 bad usage."""
    from shardkey.client.repair import RepairError, repair_dataset

    result = repair_dataset(env.chain, env.account(as_), parse_dataset_id(dataset), dry_run, same_region)
    names = env.names()
    if as_json:
        emit(result.as_json(), True)
    else:
        rows = [{"shard": s.index, "stripe": s.stripe, "reason": s.reason,
                 "from": names.get(s.old_holder, s.old_holder), "to": names.get(s.new_holder, s.new_holder),
                 "state": s.state, "detail": s.detail} for s in result.shards]
        if rows:
            emit(rows, False, ["shard", "stripe", "reason", "from", "to", "state", "detail"],
                 title="repair plan" if dry_run else "repairs")
        click.echo(f"{len(result.shards)} shard(s) repairable; {result.stripes_repaired} stripe(s) repaired; "
                   f"read {result.bytes_read} B, wrote {result.bytes_written} B in {result.seconds:.1f} s")
    if result.refused:
        raise RepairError(f"{len(result.refused)} shard(s) could not be placed: {result.refused[0].detail}")
