"""``shardkey audit log`` and ``shardkey audit verify``."""

from __future__ import annotations

import click

from shardkey.audit.health import DEFAULT_REPAIR_MARGIN
from shardkey.cli.commands import cli, pass_env
from shardkey.cli.context import Env, parse_dataset_id
from shardkey.cli.output import emit, emit_csv
from shardkey.errors import RestoreError, UsageError

LOG_COLUMNS = ["block", "event", "request", "dataset", "actor", "details"]


@cli.group()
def audit() -> None:
    """The access history and custody checks."""


@audit.command("log")
@click.option("--dataset", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
@click.option("--events", "all_events", is_flag=True, help="One row per event instead of per request.")
@pass_env
def audit_log(env: Env, dataset: str | None, as_json: bool, as_csv: bool, all_events: bool) -> None:
    """Every request with requester, location, approvals, denials, tokens, deliveries, and
    misbehaviour: proofs (shard integrity failures proven on chain) apart from claims
    (fragment failures the requester reported, wrong or missing)."""
    from dataclasses import asdict

    from shardkey.audit.log import collect_events, describe, request_histories

    if as_json and as_csv:
        raise UsageError("--json and --csv exclude each other")
    dataset_id = parse_dataset_id(dataset) if dataset else None
    events = collect_events(env.chain, dataset_id)
    names = env.names()
    rows = [describe(e, names) for e in events]
    if not (as_json or as_csv):
        for row in rows:
            row["dataset"] = row["dataset"][:10] + ".." if row["dataset"] else ""
    histories = [asdict(h) for h in request_histories(events, names)]
    if as_csv:
        emit_csv(rows, ["block", "tx", "event", "request", "dataset", "actor", "details"])
    elif as_json:
        emit({"events": rows, "requests": histories}, True)
    elif all_events:
        emit(rows, False, LOG_COLUMNS, title="ShardKey events")
    else:
        for h in histories:
            h["approvals"] = ", ".join(h["approvals"])
            h["tokens"] = len(h["tokens"])
            h["deliveries"] = ", ".join(h["deliveries"])
            h["proofs"] = "; ".join(h["proofs"])
            h["claims"] = "; ".join(h["claims"])
            h["kos_members"] = _members_cell(h.pop("released"), h.pop("member_denials"))
            h["dataset"] = h["dataset"][:10] + ".."
        emit(histories, False, ["request_id", "requester", "location", "approvals", "outcome", "kos_members",
                                "tokens", "deliveries", "proofs", "claims"], title="ShardKey access history")


def _members_cell(released: list[str], denied: list[str]) -> str:
    """Which committee members released and which denied."""
    parts = []
    if released:
        parts.append("released: " + ", ".join(released))
    if denied:
        parts.append("denied: " + "; ".join(denied))
    return "; ".join(parts)


@audit.command("verify")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True)
@click.option("--repair-margin", type=click.IntRange(min=0), default=DEFAULT_REPAIR_MARGIN, show_default=True,
              help="a stripe is 'at risk' with at most k + this many good shards (the repair threshold)")
@pass_env
def audit_verify(env: Env, dataset: str, as_json: bool, repair_margin: int) -> None:
    """Check every holder's signed receipts and grade each stripe: healthy, degraded, at risk,
    lost (exit 6 when a stripe is lost, 4 when custody or the registration fails)."""
    from dataclasses import asdict

    from shardkey.audit.health import Health
    from shardkey.audit.verify import StripesLostError, verify_dataset

    result = verify_dataset(env.chain, parse_dataset_id(dataset), repair_margin)
    names = env.names()
    rows = []
    for v in result.holders:
        row = asdict(v)
        row["holder"] = names.get(v.holder, v.holder)
        row["ok"] = v.ok
        rows.append(row)
    summary = {h.value: result.count(h) for h in Health}
    if as_json:
        emit({"dataset": dataset, "root_ok": result.root_ok, "custody_ok": result.ok,
              "repair_margin": repair_margin, "stripe_health": summary, "holders": rows,
              "stripes": [s.as_json() for s in result.stripes]}, True)
    else:
        for row in rows:
            for key in ("missing", "wrong", "bad_signature"):
                row[key] = len(row[key])
        emit(rows, False, ["holder", "ok", "expected", "verified", "missing", "wrong", "bad_signature",
                           "bundle_ok", "error"], title="custody receipts")
        unhealthy = [{**s.as_json(), "missing": ", ".join(map(str, s.missing)),
                      "bad": ", ".join(map(str, s.bad))}
                     for s in result.stripes if s.health != Health.HEALTHY]
        click.echo("stripes: " + ", ".join(f"{n} {h}" for h, n in summary.items())
                   + f" (at risk: at most k + {repair_margin} good shards)")
        if unhealthy:
            emit(unhealthy, False, ["stripe", "health", "good", "missing", "bad"],
                 title="stripes that are not healthy")
    if result.lost:
        raise StripesLostError(f"{len(result.lost)} stripe(s) have fewer than k good shards and cannot be "
                               f"restored: {', '.join(map(str, result.lost[:20]))}"
                               + (" ..." if len(result.lost) > 20 else ""))
    if not result.root_ok:
        raise RestoreError("the registered Merkle root does not commit to the published shard hashes: "
                           "honest holders refuse custody and no shard failure can be proven")
    if not result.ok:
        raise RestoreError("some holders could not prove custody (see above)")
