"""``shardkey demo``: the whole protocol on a throwaway devnet, checked step by step.

A file is stored under a policy with a time window, a geofence, two approval groups and
threshold 3 of 5. Then: a request from outside the geofence is denied; a request with
one approval missing cannot be fetched; a fully approved request restores the file byte
for byte with two holders stopped; the audit log shows it all. Exit 0 only when every
step behaved as it should.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from shardkey.cli.commands import cli, pass_env
from shardkey.cli.context import Env
from shardkey.errors import PolicyDenied, ShardKeyError

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)


class DemoFailure(ShardKeyError):
    """A demo step did not behave as it should."""


def _policy_yaml(now: int) -> str:
    start = time.gmtime(now - 2 * 3600)
    end = time.gmtime(now + 2 * 3600)
    return f"""\
requesters: [requester]
time:
  not_before: {now - 3600}
  not_after: {now + 30 * 86400}
  daily: "{start.tm_hour:02d}:00-{end.tm_hour:02d}:00"
  weekdays: [mon, tue, wed, thu, fri, sat, sun]
geo:
  attestors: [attestor]
  max_age: 600
  max_accuracy_m: 500
  regions:
    - {{lat: {PARIS[0]}, lon: {PARIS[1]}, radius_km: 50}}
    - {{polygon: [[52.52, 13.40], [52.50, 13.45], [52.48, 13.38]]}}
approvals:
  - {{group: client, members: [client-rep], required: 1}}
  - {{group: provider, members: [provider-rep], required: 1}}
approval_window: 3600
threshold: 3
"""


@cli.command()
@click.option("--size", default=3 * 1024 * 1024 + 12345, show_default=True, type=click.IntRange(0))
@click.option("--keep", is_flag=True, help="Leave the devnet running afterwards.")
@pass_env
def demo(env: Env, size: int, keep: bool) -> None:
    """Run the end-to-end demo on a throwaway devnet."""
    from shardkey.devnet.network import down, up

    home = Path(tempfile.mkdtemp(prefix="shardkey-demo-"))
    denv = Env(home=home)
    step = _Stepper()
    try:
        step("start a devnet: anvil, contracts, a KOS committee of 3 (threshold 2), 5 holder agents",
             lambda: f"{up(home, holders=5).rpc_url}")
        _run(denv, home, size, step)
    finally:
        if not keep:
            down(home)
            shutil.rmtree(home, ignore_errors=True)
        else:
            click.echo(f"devnet left running in {home} (shardkey --home {home} devnet down)")
    click.echo(click.style(f"demo passed: {step.count} steps behaved as they should", fg="green"))


class _Stepper:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, title: str, action: Callable[[], str | None]) -> None:
        self.count += 1
        click.echo(click.style(f"[{self.count}] {title}", bold=True))
        started = time.perf_counter()
        detail = action()
        suffix = f" ({time.perf_counter() - started:.2f} s)"
        click.echo(f"    ok{': ' + detail if detail else ''}{suffix}")


def _run(env: Env, home: Path, size: int, step: _Stepper) -> None:
    from shardkey.audit.log import collect_events, request_histories
    from shardkey.client.fetch import fetch
    from shardkey.client.retrieval import (
        attest_location,
        load_ephemeral_key,
        prune_ephemeral_keys,
        request_retrieval,
    )
    from shardkey.client.store import StoreOptions, store_file
    from shardkey.devnet.process import stop
    from shardkey.policy.yaml_file import parse_policy_yaml

    chain = env.chain
    source = home / "demo-input.bin"
    source.write_bytes(os.urandom(size))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    policy_file = parse_policy_yaml(_policy_yaml(chain.client.latest_timestamp()), env.resolve)
    state: dict[str, object] = {}

    def do_store() -> str:
        result = store_file(source, policy_file.policy, StoreOptions(k=3, p=2, shard_size=256 * 1024,
                                                                     threshold=3),
                            env.account("owner"), chain)
        state["dataset"] = result.dataset_id
        return (f"dataset 0x{result.dataset_id.hex()[:16]}.., {result.params.shard_count} shards over "
                f"5 holders, t=3 of 5, active after every holder confirmed custody")
    step(f"store a {size} byte file under a policy (time window, geofence, 2 approval groups)", do_store)
    dataset = state["dataset"]
    assert isinstance(dataset, bytes)
    requester = env.account("requester")
    keys_dir = home / "requests"

    def denied_outside() -> str:
        proof = attest_location(chain, env.account("attestor"), requester.address, *LONDON, 30)
        outcome = request_retrieval(chain, requester, dataset, proof, keys_dir)
        if not outcome.state.startswith("denied: OutsideRegions"):
            raise DemoFailure(f"request from London should be denied, got {outcome.state}")
        return f"request {outcome.request_id} {outcome.state}"
    step("request from London (outside the geofence) is denied on chain", denied_outside)

    def missing_approval() -> str:
        proof = attest_location(chain, env.account("attestor"), requester.address, *PARIS, 30)
        outcome = request_retrieval(chain, requester, dataset, proof, keys_dir)
        subject = chain.retrievals.approval_subject(outcome.request_id)
        chain.retrievals.approve(env.account("client-rep"), subject)
        try:
            fetch(chain, requester, outcome.request_id, home / "never.bin",
                  load_ephemeral_key(keys_dir, outcome.request_id), timeout=3)
        except PolicyDenied as exc:
            if (home / "never.bin").exists():
                raise DemoFailure("a refused fetch left an output file") from None
            state["pending"] = outcome.request_id
            return f"request {outcome.request_id}: {exc}"
        raise DemoFailure("fetch succeeded without the provider's approval")
    step("request from Paris with only the client's approval cannot be fetched", missing_approval)

    def stop_two() -> str:
        holders = env.devnet.data["holders"] if env.devnet else []
        for entry in holders[3:5]:
            stop(int(entry["pid"]))
        return ", ".join(e["name"] for e in holders[3:5]) + " stopped"

    def granted() -> str:
        request_id = state["pending"]
        assert isinstance(request_id, int)
        chain.retrievals.approve(env.account("provider-rep"),
                                 chain.retrievals.approval_subject(request_id))
        out = home / "restored.bin"
        result = fetch(chain, requester, request_id, out, load_ephemeral_key(keys_dir, request_id),
                       timeout=60)
        if prune_ephemeral_keys(chain, keys_dir, only=request_id) != [request_id]:
            raise DemoFailure("the completed request's ephemeral key was not deleted")
        restored = hashlib.sha256(out.read_bytes()).hexdigest()
        if restored != digest:
            raise DemoFailure("restored file differs from the original")
        return (f"{result.bytes_written} bytes restored, SHA-256 {restored[:16]}.. matches; fragments "
                f"from {len(result.good_holders)} holders")
    step("provider approves; stop two of five holders", stop_two)
    step("fetch restores the file byte for byte from the three holders left", granted)

    def show_audit() -> str:
        names = env.names()
        histories = request_histories(collect_events(chain, dataset), names)
        for h in histories:
            click.echo(f"    #{h.request_id} {h.requester}: {h.location}; approvals "
                       f"[{', '.join(h.approvals)}]; tokens {len(h.tokens)}; deliveries "
                       f"{len(h.deliveries)}; {h.outcome}")
        outcomes = [h.outcome for h in histories]
        if len(histories) != 2 or not outcomes[0].startswith("denied") or outcomes[1] != "completed":
            raise DemoFailure(f"audit log does not show the expected history: {outcomes}")
        return "the chain's events alone tell the whole story"
    step("audit log: the access history from on-chain events", show_audit)
