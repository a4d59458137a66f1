"""Issue #12's rehearsal: a whole ShardKey network set up from nothing on a chain that is not
the devnet, behind an RPC provider at its worst, with the commands of docs/OPERATIONS.md only.

A second anvil (chain id 4343, a block a second) stands in for a testnet; in front of it the
hostile proxy (tests/support/hostile_rpc.py) runs as a real process: it caps ``eth_getLogs``
at 10 blocks, rotating through every refusal message it knows, answers 15 % of calls with
429, and lags its head now and then. Every service and every command reaches the chain only
through it (the deployment's ``rpc_url``); only the faucet (``anvil_setBalance``) talks to
anvil. Each party works in its own folder: deployer, two KOS committee members (2 of 2),
three holder operators in three regions, owner, requester, two approvers, auditor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shardkey.devnet.anvil import free_port, start_anvil
from shardkey.devnet.process import stop
from tests.support.hostile_rpc import REFUSALS
from tests.support.operator import PASSPHRASE, Operator, end, wait_for

CHAIN_ID = 4343
KOS_OPS = ("kos-op-1", "kos-op-2")
RANGE_CAP = 10
REPO = Path(__file__).resolve().parents[2]
HOLDERS = {"holder-eu": ("eu-west", "48.8566", "2.3522"), "holder-us": ("us-east", "40.7128", "-74.0060"),
           "holder-ap": ("ap-south", "1.3521", "103.8198")}
POLICY = """\
requesters: [requester]
approvals:
  - {group: ops, members: [approver-1, approver-2], required: 2}
threshold: 3
"""


@dataclass
class Network:
    """The chain, the proxy in front of it, and the operator's shell."""

    op: Operator
    proxy_url: str

    def head(self) -> int:
        reply = httpx.post(self.op.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                                  "params": []}, timeout=5)
        return int(reply.json()["result"], 16)

    def proxy_stats(self) -> dict:
        return httpx.get(self.proxy_url.split("/v3/")[0] + "/stats", timeout=5).json()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("rehearsal")
    pid, anvil_url = start_anvil(root / "anvil.log", port=free_port(), block_time=1.0, chain_id=CHAIN_ID)
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tests.support.hostile_rpc", "--upstream", anvil_url, "--cap", str(RANGE_CAP),
         "--rate-limit-share", "0.15", "--lag-every", "40", "--max-lag", "3"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None
        proxy_url = proxy.stdout.readline().strip()
        assert proxy_url.startswith("http://127.0.0.1:"), proxy.stderr.read() if proxy.stderr else ""
        (root / "work").mkdir()
        yield Network(Operator(root / "work", anvil_url), proxy_url)
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        stop(pid)


def _party(root: Path, name: str) -> None:
    (root / name).mkdir()
    (root / name / "pass").write_text(PASSPHRASE + "\n")
    os.chmod(root / name / "pass", 0o600)


def _network_yaml(root: Path, party: str, addresses: dict[str, str]) -> str:
    book = "".join(f'  {name}: "{address}"\n' for name, address in addresses.items())
    (root / party / "network.yaml").write_text(
        "deployment: ../deployer/deployment.json\npassphrase_file: pass\n"
        f"accounts:\n  {party}: {party}.json\naddresses:\n{book}")
    return f"{party}/network.yaml"


def _health(endpoint: str) -> httpx.Response:
    return httpx.get(f"{endpoint}/v1/health", timeout=2)


def _deliveries(endpoint: str) -> float:
    for line in httpx.get(f"{endpoint}/metrics", timeout=5).text.splitlines():
        if line.startswith("shardkey_holder_deliveries_total"):
            return float(line.split()[-1])
    return 0.0


def test_a_network_from_nothing_behind_a_hostile_provider(network: Network) -> None:
    op, root, started = network.op, network.op.root, time.monotonic()
    parties = ("deployer", *KOS_OPS, *HOLDERS, "owner", "requester", "approver-1", "approver-2", "auditor")
    for party in parties:
        _party(root, party)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: root / f"{name}.log" for name in (*KOS_OPS, *HOLDERS)}
    try:
        # Deployer.
        admin = op.json("keys", "new", "--kind", "eth", "-o", "deployer/admin.json",
                        "--passphrase-file", "deployer/pass")
        op.fund(admin["address"])
        op.run("network", "deploy", "--rpc", network.proxy_url, "--as", "deployer/admin.json",
               "--passphrase-file", "deployer/pass", "--chain-id", str(CHAIN_ID),
               "-o", "deployer/deployment.json")
        deployment = json.loads((root / "deployer/deployment.json").read_text())
        assert deployment["rpc_url"] == network.proxy_url  # every service and command goes through it
        admin_args = ("--as", "deployer/admin.json", "--deployment", "deployer/deployment.json",
                      "--passphrase-file", "deployer/pass")
        # Two KOS operators; the deployer starts committee epoch 1 with both, threshold 2.
        kos_members = []
        for name in KOS_OPS:
            kos = op.json("kos", "init", f"{name}/kos", "--deployment", "deployer/deployment.json",
                          "--passphrase-file", f"{name}/pass", "--confirmations", "2")
            op.fund(kos["address"])
            kos_members += ["--member", f"{kos['address']}={name}/kos/kos.hpke.json"]
        op.run("kos", "committee", "start", *kos_members, "--threshold", "2", *admin_args)
        for name in KOS_OPS:
            procs[name] = op.start("kos", "run", "--config", f"{name}/kos/kos.toml", log=logs[name])
        for name in KOS_OPS:
            heartbeat = root / name / "kos/state/heartbeat.json"
            wait_for(lambda h=heartbeat: json.loads(h.read_text())["ok"], 90, name, procs[name], logs[name])

        # Three holder operators in three regions.
        endpoints: dict[str, str] = {}
        for name, (region, lat, lon) in HOLDERS.items():
            port = free_port()
            holder = op.json("holder", "init", f"{name}/holder", "--deployment", "deployer/deployment.json",
                             "--listen-port", str(port), "--passphrase-file", f"{name}/pass",
                             "--confirmations", "2")
            op.fund(holder["address"])
            endpoints[name] = f"http://127.0.0.1:{port}"
            op.run("holder", "register", "--config", f"{name}/holder/holder.toml",
                   "--endpoint", endpoints[name], "--region", region, "--lat", lat, "--lon", lon)
            op.run("holder", "activate", holder["address"], *admin_args)
        for name in HOLDERS:
            procs[name] = op.start("holder", "run", "--config", f"{name}/holder/holder.toml", log=logs[name])
        for name in HOLDERS:
            wait_for(lambda n=name: _health(endpoints[n]).status_code == 200, 90, name, procs[name],
                     logs[name])

        # Owner, requester, approvers: their own keys; other people by address only.
        people = {}
        for party in ("owner", "requester", "approver-1", "approver-2"):
            people[party] = op.json("keys", "new", "--kind", "eth", "-o", f"{party}/{party}.json",
                                    "--passphrase-file", f"{party}/pass")["address"]
            op.fund(people[party])
        owner = _network_yaml(root, "owner", {n: people[n] for n in ("requester", "approver-1",
                                                                     "approver-2")})
        requester = ("--network", _network_yaml(root, "requester", {"owner": people["owner"]}),
                     "--home", "requester/home")
        approvers = {n: _network_yaml(root, n, {"requester": people["requester"]})
                     for n in ("approver-1", "approver-2")}
        (root / "auditor/network.yaml").write_text(
            "deployment: ../deployer/deployment.json\naddresses:\n"
            + "".join(f'  {n}: "{a}"\n' for n, a in people.items()))
        (root / "owner/policy.yaml").write_text(POLICY)
        data = os.urandom(200_000)
        (root / "owner/report.bin").write_bytes(data)
        dataset = op.json("--network", owner, "store", "owner/report.bin", "--policy", "owner/policy.yaml",
                          "--as", "owner", "--data-shards", "2", "--parity", "1",
                          "--shard-size", "65536")["dataset"]
        print(f"set up and stored in {time.monotonic() - started:.0f} s")

        def retrieve(out: str, before_fetch=None) -> int:
            request = op.json(*requester, "request", dataset, "--as", "requester")
            assert request["state"] == "pending", request
            rid = str(request["request"])
            for name, config in approvers.items():
                op.run("--network", config, "approve", rid, "--as", name, "--dataset", dataset,
                       "--requester", "requester", "--yes")
            if before_fetch is not None:
                before_fetch(int(rid))
            op.run(*requester, "fetch", rid, "-o", out, "--as", "requester", "--timeout", "150", timeout=200)
            assert (root / out).read_bytes() == data
            return int(rid)

        first = retrieve("requester/report-1.bin")

        def completed(history: dict) -> bool:
            return history["outcome"] == "completed"

        def audited(request_id: int, seen=completed) -> tuple[dict, dict]:
            """The auditor's log and the request's history once ``seen`` holds of it (by default
            the completion), or after 60 s: the provider lags its head now and then, so the
            auditor may see the last block late. ``seen`` is called on every history read."""
            deadline = time.monotonic() + 60
            while True:
                rows = json.loads(op.run("--network", "auditor/network.yaml", "audit", "log", "--dataset",
                                         dataset, "--json").stdout)
                (history,) = [h for h in rows["requests"] if h["request_id"] == request_id]
                if seen(history) or time.monotonic() > deadline:
                    return rows, history
                time.sleep(1)

        rows, history = audited(first)
        assert history["requester"] == "requester" and history["outcome"] == "completed", history
        assert sorted(history["approvals"]) == ["approver-1", "approver-2"], history
        assert len(history["tokens"]) == 3 and len(history["deliveries"]) >= 3, history
        events = {r["event"] for r in rows["events"]}
        assert {"DatasetRegistered", "RetrievalRequested", "RetrievalApproved",
                "RetrievalCompleted"} <= events
        print(f"first retrieval after {time.monotonic() - started:.0f} s")

        # A holder down for more blocks than the provider's range cap catches up and serves.
        procs["holder-ap"].kill()
        procs["holder-ap"].wait(timeout=10)
        stopped_at = network.head()
        while network.head() < stopped_at + RANGE_CAP + 5:
            time.sleep(0.5)
        procs["holder-ap"] = op.start("holder", "run", "--config", "holder-ap/holder/holder.toml",
                                      log=logs["holder-ap"])
        ap = endpoints["holder-ap"]

        def caught_up() -> bool:
            health = _health(ap)
            return health.status_code == 200 and health.json()["lag_blocks"] <= 2
        wait_for(caught_up, 90, "holder-ap catching up", procs["holder-ap"], logs["holder-ap"])
        deadline = time.monotonic() + 40
        while (status := op.json("holder", "status", "--config", "holder-ap/holder/holder.toml"))[
                "lag_blocks"] > 3:
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status["status"] == "active" and status["datasets"] == 1, status
        retrieve("requester/report-2.bin")  # threshold 3 of 3: it must deliver for this to restore
        assert _deliveries(ap) >= 1
        print(f"holder caught up and served after {time.monotonic() - started:.0f} s")

        # One KOS member killed (2 of 2 needed); a request approved while it is down is served once
        # it is back: it catches up from its cursor.
        down = KOS_OPS[0]
        procs[down].kill()
        procs[down].wait(timeout=10)

        def while_kos_is_down(rid: int) -> None:
            # The running member acts once the approval is 2 blocks deep, its release is mined a block
            # later, and the auditor's provider may lag its head by up to 3 more, all through 429s: so
            # wait for the release rather than for a block count, and check no token appears meanwhile.
            def released(pending: dict) -> bool:
                assert pending["tokens"] == [], pending  # one member of a 2-of-2 committee cannot mint
                if not pending["released"]:
                    return False  # a lagging provider may not show the second approval yet either
                assert sorted(pending["approvals"]) == ["approver-1", "approver-2"], pending
                return True

            waiting = time.monotonic()
            _, pending = audited(rid, released)
            assert len(pending["released"]) == 1, (pending, logs[KOS_OPS[1]].read_text()[-3000:])
            print(f"the running member's release seen after {time.monotonic() - waiting:.0f} s")
            procs[down] = op.start("kos", "run", "--config", f"{down}/kos/kos.toml", log=logs[down])

        third = retrieve("requester/report-3.bin", while_kos_is_down)
        kos_log = logs[down].read_text()
        assert f'"request": {third}' in kos_log and "shares released" in kos_log, kos_log[-3000:]

        # The auditor, with addresses only, reads the whole history (once it sees the last completion).
        audited(third)
        rows = json.loads(op.run("--network", "auditor/network.yaml", "audit", "log", "--json").stdout)
        histories = {h["request_id"]: h for h in rows["requests"]}
        assert sorted(histories) == [first, first + 1, third], histories
        for history in histories.values():
            assert history["outcome"] == "completed" and len(history["tokens"]) == 3, history
            assert sorted(history["approvals"]) == ["approver-1", "approver-2"], history
        actors = {(r["event"], r["actor"]) for r in rows["events"]}
        assert ("DatasetRegistered", "owner") in actors and ("RetrievalRequested", "requester") in actors

        stats = network.proxy_stats()
        print(f"proxy: {stats}; whole rehearsal {time.monotonic() - started:.0f} s")
        assert set(stats["messages"]) == {str(i) for i in range(len(REFUSALS))}, stats  # every message
        assert stats["refusals"].get("head", 0) > 0 and stats["rate_limited"] > 0, stats
        assert stats["lagged"] > 0, stats
    finally:
        for name, proc in procs.items():
            if proc.poll() is None:
                assert end(proc) == 0, (name, logs[name].read_text()[-3000:])
