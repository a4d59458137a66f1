"""Command definitions: devnet, store, policy, revoke, geo, request, approve, fetch, audit."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from shardkey.cli.context import Env, default_home, parse_dataset_id
from shardkey.cli.output import emit, progress_bar
from shardkey.crypto.erasure import DEFAULT_SHARD_SIZE, fitted_shard_size, stripe_count
from shardkey.crypto.hpke import DEFAULT_SUITE, SUITE_NAMES
from shardkey.errors import PolicyDenied, ShardKeyError, UsageError
from shardkey.heap import freeze_long_lived

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from shardkey.chain.model import RequestInfo

pass_env = click.make_pass_decorator(Env)
HPKE_SUITES = tuple(SUITE_NAMES)
DEFAULT_HPKE_SUITE = next(name for name, suite in SUITE_NAMES.items() if suite is DEFAULT_SUITE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="Devnet home folder (default: $SHARDKEY_HOME or ./.shardkey).")
@click.option("--network", "network_file", type=click.Path(path_type=Path), default=None,
              envvar="SHARDKEY_NETWORK", help="Config naming a deployment file and account keystores.")
@click.option("--passphrase-file", type=click.Path(path_type=Path), default=None,
              envvar="SHARDKEY_PASSPHRASE_FILE",
              help="File holding the keystore passphrase (else $SHARDKEY_PASSWORD, else a prompt).")
@click.option("--max-fee-gwei", type=click.FloatRange(min=0, min_open=True), default=None,
              envvar="SHARDKEY_MAX_FEE_GWEI",
              help="Ceiling of a transaction's max fee per gas (else the --network file's max_fee_gwei).")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, network_file: Path | None,
        passphrase_file: Path | None, max_fee_gwei: float | None) -> None:
    """ShardKey: encrypted shards at independent holders, keys released by an on-chain policy."""
    env = Env(home=(home.resolve() if home else default_home()), network_file=network_file,
              passphrase_file=passphrase_file, max_fee_gwei=max_fee_gwei)
    if isinstance(ctx.obj, dict):  # main() keeps the Env to word its connection hint
        ctx.obj["env"] = env
    ctx.obj = env


# ---------------------------------------------------------------- devnet
@cli.group()
def devnet() -> None:
    """Run a local network: anvil, contracts, a KOS committee, holder agents and the repair service."""


@devnet.command("up")
@click.option("--holders", default=5, show_default=True, type=click.IntRange(1, 200))
@click.option("--block-time", default=0.5, show_default=True, type=click.FloatRange(0.05, 15))
@click.option("--hpke-suite", type=click.Choice(HPKE_SUITES), default=DEFAULT_HPKE_SUITE, show_default=True,
              help="Suite of the KOS members' and holders' HPKE keys (x25519: not post-quantum).")
@click.option("--no-repairer", is_flag=True,
              help="Do not start the repair service (repairs are then run by hand: `shardkey repair`).")
@click.option("--kos", "kos_members", default=3, show_default=True, type=click.IntRange(1, 32), metavar="N",
              help="KOS committee members (each its own account, HPKE key and process); stores deal "
                   "their wrap keys to them.")
@click.option("--kos-threshold", type=click.IntRange(1, 32), default=None, metavar="T",
              help="Members needed to release a key (default: a majority of --kos).")
@pass_env
def devnet_up(env: Env, holders: int, block_time: float, hpke_suite: str, no_repairer: bool,
              kos_members: int, kos_threshold: int | None) -> None:
    """Start the devnet; on a running one, start again any KOS member or holder that died.

    When the devnet's anvil died its chain is gone: exits 5 saying what to run.
    """
    from shardkey.crypto.hpke import parse_suite
    from shardkey.devnet.network import up

    info = up(env.home, holders=holders, block_time=block_time,
              hpke_suite=parse_suite(hpke_suite), repairer=not no_repairer, kos_members=kos_members,
              kos_threshold=kos_threshold)
    revived = info.data.get("revived") or []
    if revived:
        click.echo(f"restarted: {', '.join(revived)} (from their state folders)")
    click.echo(f"devnet up: {info.rpc_url}, {len(info.data['holders'])} holders, "
               f"a KOS committee of {len(info.data['kos_members'])} "
               f"(threshold {info.data['kos_threshold']}), "
               f"{'a' if info.data.get('repairer') else 'no'} repairer; "
               f"details in {info.home / 'devnet.json'}")


@devnet.command("down")
@pass_env
def devnet_down(env: Env) -> None:
    """Stop every process the devnet started."""
    from shardkey.devnet.network import down

    stopped = down(env.home)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@devnet.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def devnet_status(env: Env, as_json: bool) -> None:
    """Show what runs; exit 5 when a member is down."""
    from shardkey.devnet.network import status
    from shardkey.devnet.supervise import MEMBER_DOWN_EXIT

    rows = status(env.home)
    if not rows:
        raise UsageError(f"no devnet in {env.home}")
    emit(rows, as_json, columns=["name", "pid", "running", "endpoint"])
    down = [str(r["name"]) for r in rows if not r["running"]]
    if down:
        what = "'shardkey devnet up' starts them again" if "anvil" not in down else \
            "anvil died with the chain: 'shardkey devnet down' then 'shardkey devnet up'"
        click.echo(f"down: {', '.join(down)}; {what}", err=True)
        raise SystemExit(MEMBER_DOWN_EXIT)


@devnet.command("restart")
@click.argument("name")
@pass_env
def devnet_restart(env: Env, name: str) -> None:
    """Stop the KOS member, holder or repairer NAME (when it runs) and start it again with its state."""
    from shardkey.devnet.info import DevnetInfo
    from shardkey.devnet.supervise import restart

    info = DevnetInfo.load(env.home)
    if info is None:
        raise UsageError(f"no devnet in {env.home}")
    restart(info.home, info.data, name)
    click.echo(f"restarted {name}")


# ---------------------------------------------------------------- store / policy
def _load_policy(env: Env, path: Path) -> Any:
    from shardkey.policy.yaml_file import parse_policy_yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"--policy {path}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"--policy {path}: not a text file") from None
    from shardkey.policy.errors import PolicyFileError

    try:
        return parse_policy_yaml(text, env.resolve)
    except PolicyFileError as exc:  # name the file as well as the field inside it
        raise UsageError(f"--policy {path}: {exc}") from None


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path))
@click.option("--data-shards", "k", default=3, show_default=True, type=click.IntRange(1, 255))
@click.option("--parity", "p", default=2, show_default=True, type=click.IntRange(0, 255))
@click.option("--shard-size", default=DEFAULT_SHARD_SIZE, show_default=True, type=click.IntRange(1, 1 << 30),
              help="Bytes per shard, at most: a file that fits in one stripe of smaller shards "
                   "gets the least whole number of 4 KiB pages that holds it.")
@click.option("--threshold", type=click.IntRange(1, 255), default=None,
              help="Fragments needed per shard key (default: the policy file's, else 3).")
@click.option("--fragment-holders", type=click.IntRange(1, 255), default=None)
@click.option("--as", "as_", default="owner", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_env
def store(env: Env, file: Path, policy_path: Path, k: int, p: int, shard_size: int,
          threshold: int | None, fragment_holders: int | None, as_: str, as_json: bool) -> None:
    """Store FILE under a policy; prints the dataset id."""
    from shardkey.client.store import StoreOptions, store_file

    if not file.is_file():
        raise UsageError(f"FILE {file}: no such file")
    policy_file = _load_policy(env, policy_path)
    t = threshold or policy_file.threshold or 3
    options = StoreOptions(k=k, p=p, shard_size=shard_size, threshold=t, fragment_holders=fragment_holders)
    owner = env.account(as_)
    size = file.stat().st_size
    stripes = stripe_count(size, k, fitted_shard_size(size, k, shard_size))
    freeze_long_lived()
    with progress_bar("storing", stripes, enabled=not as_json) as advance:
        result = store_file(file, policy_file.policy, options, owner, env.chain, progress=advance)
    dataset = "0x" + result.dataset_id.hex()
    if as_json:
        emit({"dataset": dataset, "shards": result.params.shard_count,
              "shard_size": result.params.shard_size, "tx": result.tx_hash,
              "timings": result.timings}, True)
    else:
        click.echo(dataset)


@cli.group()
def policy() -> None:
    """Show or update a dataset's Key Access Policy."""


@policy.command("show")
@click.argument("dataset")
@click.option("--version", type=click.IntRange(1), default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_env
def policy_show(env: Env, dataset: str, version: int | None, as_json: bool) -> None:
    """Print a policy version (default: the current one) as YAML or JSON."""
    import yaml

    from shardkey.policy.yaml_file import policy_to_yaml_dict

    dataset_id = parse_dataset_id(dataset)
    info = env.chain.datasets.dataset(dataset_id)
    if info.status == 0:
        raise UsageError(f"DATASET {dataset}: not registered on this chain")
    current = env.chain.datasets.policy(dataset_id, version)
    names = env.names()
    data = policy_to_yaml_dict(current, names.get, threshold=info.params.threshold)
    header = {"dataset": dataset, "version": version or info.policy_version,
              "status": info.status.name.lower()}
    if as_json:
        emit({**header, "policy": data}, True)
    else:
        click.echo("# " + ", ".join(f"{k}: {v}" for k, v in header.items()))
        click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@policy.command("update")
@click.argument("dataset")
@click.argument("policy_path", metavar="POLICY.yaml", type=click.Path(path_type=Path))
@click.option("--as", "as_", default="owner", show_default=True)
@pass_env
def policy_update(env: Env, dataset: str, policy_path: Path, as_: str) -> None:
    """Publish a new policy version."""
    dataset_id = parse_dataset_id(dataset)
    policy_file = _load_policy(env, policy_path)
    owner = env.account(as_)
    env.chain.datasets.update_policy(owner, dataset_id, policy_file.policy)
    click.echo(f"policy version {env.chain.datasets.dataset(dataset_id).policy_version} in force")


@cli.command()
@click.argument("dataset")
@click.option("--as", "as_", default="owner", show_default=True)
@pass_env
def revoke(env: Env, dataset: str, as_: str) -> None:
    """Revoke a dataset: no retrieval is approved or served from now on."""
    dataset_id = parse_dataset_id(dataset)
    env.chain.datasets.revoke(env.account(as_), dataset_id)
    click.echo(f"dataset {dataset} revoked")


# ---------------------------------------------------------------- geo / request / approve / fetch
@cli.group()
def geo() -> None:
    """Location attestations."""


@geo.command("attest")
@click.option("--for", "for_", required=True, help="Requester account name or address.")
@click.option("--lat", required=True, type=click.FloatRange(-90, 90))
@click.option("--lon", required=True, type=click.FloatRange(-180, 180))
@click.option("--accuracy", default=50, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option("--as", "as_", default="attestor", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path))
@pass_env
def geo_attest(env: Env, for_: str, lat: float, lon: float, accuracy: int, as_: str, output: Path) -> None:
    """Sign an EIP-712 location attestation into a proof file."""
    from shardkey.client.retrieval import attest_location
    from shardkey.fsutil import atomic_write_bytes

    proof = attest_location(env.chain, env.account(as_), env.resolve(for_), lat, lon, accuracy)
    atomic_write_bytes(output, (json.dumps(proof.to_json(), indent=2) + "\n").encode(), mode=0o644)
    click.echo(f"attestation for {proof.requester} written to {output}")


@cli.command()
@click.argument("dataset")
@click.option("--as", "as_", default="requester", show_default=True)
@click.option("--location", type=click.Path(path_type=Path), default=None)
@click.option("--hpke-suite", type=click.Choice(HPKE_SUITES), default=DEFAULT_HPKE_SUITE, show_default=True,
              help="Suite of the request's ephemeral key (x25519: not post-quantum).")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def request(env: Env, dataset: str, as_: str, location: Path | None, hpke_suite: str, as_json: bool) -> None:
    """Ask for a dataset; prints the request id and state (exit 3 when denied).

    Keys of earlier requests that are now completed, denied or expired are deleted first.
    """
    from shardkey.client.retrieval import SignedAttestation, prune_ephemeral_keys, request_retrieval
    from shardkey.crypto.hpke import parse_suite

    dataset_id = parse_dataset_id(dataset)
    attestation = SignedAttestation.load(location) if location else None
    requester = env.account(as_)
    prune_ephemeral_keys(env.chain, env.requests_dir)
    outcome = request_retrieval(env.chain, requester, dataset_id, attestation, env.requests_dir,
                                parse_suite(hpke_suite))
    if outcome.disagreement:
        click.echo(outcome.disagreement, err=True)
    if as_json:
        emit({"request": outcome.request_id, "state": outcome.state, "reason": int(outcome.reason)}, True)
    else:
        click.echo(f"{outcome.request_id} {outcome.state}")
    if outcome.reason:
        raise SystemExit(PolicyDenied.exit_code)


@cli.command()
@click.argument("request_id", metavar="REQUEST", type=click.IntRange(1))
@click.option("--as", "as_", required=True)
@click.option("--yes", "-y", is_flag=True,
              help="Approve without asking; needed when stdin is not a terminal.")
@click.option("--dataset", "expect_dataset", default=None,
              help="Refuse unless the request is for this dataset.")
@click.option("--requester", "expect_requester", default=None,
              help="Refuse unless this account (name or address) made the request.")
@pass_env
def approve(env: Env, request_id: int, as_: str, yes: bool, expect_dataset: str | None,
            expect_requester: str | None) -> None:
    """Approve a request as a member of its approval groups.

    Shows dataset, requester, ephemeral key, attested location and time window first, then
    asks (a terminal) or needs --yes. The approval binds these fields, not the id alone.
    """
    import sys

    from shardkey.client.approval import check_expected, describe, preview_approval

    approver = env.account(as_)
    preview = preview_approval(env.chain, request_id, env.deployment.start_block)
    check_expected(preview, parse_dataset_id(expect_dataset) if expect_dataset else None,
                   env.resolve(expect_requester) if expect_requester else None)
    for line in describe(preview, env.names()):
        click.echo(line)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"approving request {request_id} needs confirmation: stdin is not a "
                             "terminal, so check the fields above and pass --yes")
        if not click.confirm(f"approve request {request_id} as {as_}?", default=False):
            raise UsageError(f"request {request_id} not approved")
    env.chain.retrievals.approve(approver, preview.subject)
    info = env.chain.retrievals.request(request_id)
    click.echo(f"request {request_id}: {info.status.name.lower()}")


@cli.command()
@click.argument("request_id", metavar="REQUEST", type=click.IntRange(1))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path))
@click.option("--as", "as_", default="requester", show_default=True)
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(1))
@click.option("--json", "as_json", is_flag=True)
@pass_env
def fetch(env: Env, request_id: int, output: Path, as_: str, timeout: float, as_json: bool) -> None:
    """Restore the dataset of an approved request into OUTPUT (atomically)."""
    from shardkey.client.fetch import expired
    from shardkey.client.fetch import fetch as run_fetch
    from shardkey.client.reports import describe_report
    from shardkey.client.retrieval import load_ephemeral_key, prune_ephemeral_keys

    requester = env.account(as_)  # an unknown account is named before anything else is read
    try:
        key = load_ephemeral_key(env.requests_dir, request_id)
    except UsageError:  # pruned already? an expired request is still settled (claims need no key)
        known = _known_request(env, request_id)
        if known is None or not expired(env.chain, known):
            raise
        _settle_expired(env, requester, known)
    info = env.chain.retrievals.request(request_id)
    if expired(env.chain, info):
        _settle_expired(env, requester, info)
    total = 0
    if info.dataset_id != bytes(32):
        total = env.chain.datasets.dataset(info.dataset_id).params.plaintext_length
    freeze_long_lived()
    try:
        with progress_bar("fetching", total, enabled=not as_json) as advance:
            result = run_fetch(env.chain, requester, request_id, output, key, timeout=timeout,
                               progress=advance)
    finally:  # completed, denied or expired: the key would only ever open the public deliveries
        del key
        with contextlib.suppress(ShardKeyError):  # never mask the fetch's own error
            prune_ephemeral_keys(env.chain, env.requests_dir, only=request_id)
    names = env.names()
    summary = {"request": request_id, "output": str(output), "bytes": result.bytes_written,
               "fragment_holders": [names.get(h, h) for h in result.good_holders],
               "wrong_fragments": [names.get(h, h) for h in result.bad_fragment_holders],
               "wrong_shards": [{"shard": i, "holder": names.get(h, h)} for i, h in result.bad_shards],
               "missing_fragments": [names.get(h, h) for h in result.missing_fragment_holders],
               "reports": [{**r.as_json(), "holder": names.get(r.holder, r.holder)} for r in result.reports],
               "parity_shards": result.parity_shards, "timings": result.timings}
    if as_json:
        emit(summary, True)
    else:
        click.echo(f"restored {result.bytes_written} bytes to {output}")
        for report in result.reports:
            click.echo("  " + describe_report(report, names))


def _settle_expired(env: Env, requester: LocalAccount, info: RequestInfo) -> NoReturn:
    """Claim the holders that never delivered to an expired request; always raises."""
    from shardkey.client.fetch import settle_expired
    from shardkey.client.retrieval import prune_ephemeral_keys

    try:
        settle_expired(env.chain, requester, info)
    finally:
        with contextlib.suppress(ShardKeyError):
            prune_ephemeral_keys(env.chain, env.requests_dir, only=info.request_id)


def _known_request(env: Env, request_id: int) -> RequestInfo | None:
    """The request, or None when this chain has no such request."""
    from shardkey.chain.errors import TransactionReverted

    try:
        return env.chain.retrievals.request(request_id)
    except TransactionReverted:
        return None


# ---------------------------------------------------------------- services
@cli.group()
def kos() -> None:
    """The Key Orchestration Service."""


@kos.command("run")
@click.option("--config", required=True, type=click.Path(path_type=Path))
def kos_run(config: Path) -> None:
    """Run a KOS committee member in the foreground; exits with the service's status (docs/KOS.md)."""
    from kos.service import run
    from shardkey.service.exits import run_service

    raise SystemExit(run_service("kos", lambda: run(config)))


@cli.group()
def holder() -> None:
    """A holder agent."""


@holder.command("run")
@click.option("--config", required=True, type=click.Path(path_type=Path))
def holder_run(config: Path) -> None:
    """Run a holder agent in the foreground; exits with the service's status (docs/HOLDER_API.md)."""
    from holder_agent.service import run
    from shardkey.service.exits import run_service

    raise SystemExit(run_service("holder", lambda: run(config)))


from shardkey.cli import (  # noqa: E402,F401  (register commands)
    audit_commands,
    committee_commands,
    demo_command,
    holder_commands,
    key_commands,
    kos_commands,
    network_commands,
    redeal_command,
    repair_commands,
    repairer_commands,
)
