"""``shardkey redeal DATASET``: the owner moves a dataset's shard keys to a new fragment set.

docs/DESIGN.md "Re-deal": a ``requestRedeal`` under the dataset's policy (approvers run
``shardkey approve`` as for any request; the audit log shows it as a re-deal), then the
fragments are collected as ``fetch`` does, split afresh and registered as the next epoch.
"""

from __future__ import annotations

from pathlib import Path

import click

from shardkey.cli.commands import cli, pass_env
from shardkey.cli.context import Env, parse_dataset_id
from shardkey.cli.output import emit


@cli.command()
@click.argument("dataset")
@click.option("--as", "as_", default="owner", show_default=True, help="The dataset's owner.")
@click.option("--location", type=click.Path(path_type=Path), default=None,
              help="Location attestation, as 'shardkey request' takes it (when the policy wants one).")
@click.option("--fragment-holders", "holders", default="auto", show_default=True,
              help="Comma-separated Active holders (names or addresses), or auto: Active holders, "
                   "regions interleaved, as many as now.")
@click.option("--count", "n", type=click.IntRange(1, 255), default=None,
              help="With auto: how many fragment holders (default: as many as the current set).")
@click.option("--threshold", type=click.IntRange(1, 255), default=None,
              help="Fragments needed to rebuild a key (default: the current threshold).")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(1),
              help="Seconds to wait for approval, fragments and the new holders' confirmations.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def redeal(env: Env, dataset: str, as_: str, location: Path | None, holders: str, n: int | None,
           threshold: int | None, timeout: float, as_json: bool) -> None:
    """Re-deal DATASET's key fragments to a new holder set (no data is re-encrypted).

    Prints the re-deal request id at once (approvers approve it as any request), then waits.
    Re-run after a crash: it reuses the approved request, or waits for a pending epoch.
    """
    from shardkey.client.redeal import parse_holders
    from shardkey.client.redeal import redeal as run_redeal
    from shardkey.client.retrieval import RequestOutcome, SignedAttestation

    dataset_id = parse_dataset_id(dataset)
    owner = env.account(as_)
    attestation = SignedAttestation.load(location) if location else None
    given = None if holders.strip().lower() == "auto" else ",".join(
        env.resolve(h.strip()) for h in holders.split(",") if h.strip())
    chosen = parse_holders(given) if given is not None else None

    def announce(outcome: RequestOutcome) -> None:
        if outcome.disagreement:
            click.echo(outcome.disagreement, err=True)
        if not as_json:
            click.echo(f"re-deal request {outcome.request_id}: {outcome.state} (approvers: "
                       f"shardkey approve {outcome.request_id})")

    result = run_redeal(env.chain, owner, dataset_id, env.requests_dir, attestation=attestation,
                        holders=chosen, n=n, threshold=threshold, timeout=timeout, on_request=announce)
    names = env.names()
    new_names = [names.get(h, h) for h in result.holders]
    summary = {"dataset": "0x" + dataset_id.hex(), "request": result.request_id, "epoch": result.epoch,
               "threshold": result.threshold, "resumed": result.resumed,
               "fragment_holders": new_names,
               "old_fragment_holders": [names.get(h, h) for h in result.old_holders],
               "timings": result.timings}
    if as_json:
        emit(summary, True)
        return
    verb = "is now current (it was pending)" if result.resumed else "is now current"
    click.echo(f"fragment epoch {result.epoch} {verb}: {result.threshold} of "
               f"{', '.join(new_names)}")
