"""Fault-injection fixtures: a real devnet whose processes the tests kill, crash and restart.

``Net`` drives the CLI (as tests/e2e does) and also reads the chain directly to count
events. Services are killed with SIGKILL or crashed at a named point
(``SHARDKEY_CRASH_AT``, see shardkey/faults.py and docs/FAULTS.md) and restarted with
``python -m holder_agent|kos --config ...``; ``devnet.json`` is kept up to date with the
new pids so ``devnet down`` stops them. After each test every service is brought back
(``heal``) so the tests of a module share one devnet without depending on each other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.deployment import Deployment
from shardkey.chain.model import HolderStatus
from shardkey.client.holder_http import unready_holders
from shardkey.devnet.process import is_running, start_detached
from shardkey.devnet.supervise import members, module_of
from shardkey.faults import CRASH_ENV, CRASH_STATUS
from shardkey.keys import load_account_file

OPEN_POLICY = "requesters: [requester]\nthreshold: 3\n"
SHARD_SIZE = "4096"


class Net:
    """One devnet in ``home``: CLI, chain reads, service control."""

    def __init__(self, home: Path):
        self.home = home
        self.chain = ShardKeyChain(Deployment.load(Path(self.info["deployment"])))

    # --- CLI --------------------------------------------------------------------

    def run(self, *args: str, check: int | None = 0, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        full_env.update(PYTHONUNBUFFERED="1", **(env or {}))
        proc = subprocess.run([sys.executable, "-m", "shardkey", "--home", str(self.home), *args],
                              capture_output=True, text=True, timeout=timeout, env=full_env,
                              check=False)
        if check is not None and proc.returncode != check:
            raise AssertionError(f"shardkey {' '.join(args)} exited {proc.returncode}, expected "
                                 f"{check}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.run(*args, "--json").stdout)

    def store(self, tmp_path: Path, data: bytes, *extra: str, policy: str = OPEN_POLICY) -> str:
        source = tmp_path / "input.bin"
        source.write_bytes(data)
        policy_file = tmp_path / "policy.yaml"
        policy_file.write_text(policy)
        return str(self.json("store", str(source), "--policy", str(policy_file),
                             "--shard-size", SHARD_SIZE, *extra)["dataset"])

    def request(self, dataset: str, as_: str = "requester") -> int:
        """``shardkey request`` done in this process (same key file for ``fetch``)."""
        from shardkey.client.retrieval import request_retrieval

        outcome = request_retrieval(self.fresh_chain(), self.account(as_), bytes.fromhex(dataset[2:]), None,
                                    self.home / "requests")
        assert outcome.state == "approved", outcome
        return int(outcome.request_id)

    def fresh_chain(self) -> ShardKeyChain:
        """A chain client without cached nonces (CLI runs send from the same accounts)."""
        return ShardKeyChain(Deployment.load(Path(self.info["deployment"])))

    def account(self, name: str) -> LocalAccount:
        return load_account_file(Path(self.info["accounts"][name]["key_file"]))

    # --- devnet.json ----------------------------------------------------------------

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.home / "devnet.json").read_text())

    def services(self) -> list[dict[str, Any]]:
        return members(self.info)

    def service(self, name: str) -> dict[str, Any]:
        return next(s for s in self.services() if s["name"] == name)

    def holder_names(self) -> list[str]:
        return [h["name"] for h in self.info["holders"]]

    def address(self, name: str) -> str:
        return str(self.info["accounts"][name]["address"])

    def name_of(self, address: str) -> str:
        return next(n for n, a in self.info["accounts"].items() if a["address"] == address)

    def _set_pid(self, name: str, pid: int) -> None:
        path = self.home / "devnet.json"
        info = json.loads(path.read_text())
        for entry in members(info):
            if entry["name"] == name:
                entry["pid"] = pid
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    # --- processes --------------------------------------------------------------------

    def pid(self, name: str) -> int:
        return int(self.service(name)["pid"])

    def alive(self, name: str) -> bool:
        return is_running(self.pid(name))

    def kill(self, name: str) -> None:
        """SIGKILL a service (no cleanup, like a power cut)."""
        pid = self.pid(name)
        if is_running(pid):
            os.killpg(pid, signal.SIGKILL)
        self.wait_dead(name, timeout=10)

    def stop(self, name: str) -> None:
        """SIGTERM a service and wait until it has exited (a clean stop: writes finish)."""
        pid = self.pid(name)
        if is_running(pid):
            os.killpg(pid, signal.SIGTERM)
        self.wait_dead(name, timeout=30)

    def wait_dead(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        pid = self.pid(name)
        while is_running(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} still running after {timeout} s")
            time.sleep(0.05)
            _reap(pid)

    def start(self, name: str, env: dict[str, str] | None = None) -> int:
        """Start a (stopped) service from its config; extra ``env`` such as a crash point."""
        assert not self.alive(name), f"{name} is running"
        entry = self.service(name)
        module = module_of(entry)
        full_env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        full_env.update(PYTHONUNBUFFERED="1", **(env or {}))
        pid = start_detached([sys.executable, "-m", module, "--config", entry["config"]],
                             Path(entry["log"]), env=full_env)
        self._set_pid(name, pid)
        self.wait_ready(name)
        return pid

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        entry = self.service(name)
        deadline = time.monotonic() + timeout
        if "endpoint" not in entry:  # a KOS member and the repairer: a heartbeat with their pid
            heartbeat = Path(entry["state_dir"]) / "heartbeat.json"

            def ready() -> bool:
                return bool(json.loads(heartbeat.read_text()).get("pid") == entry["pid"])
        else:
            import httpx

            def ready() -> bool:
                try:
                    return httpx.get(f"{entry['endpoint']}/v1/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False
        while not _safe(ready):
            if not is_running(int(entry["pid"])):
                return  # it may have crashed on purpose at start-up; the test checks
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not ready after {timeout} s; see {entry['log']}")
            time.sleep(0.1)

    def restart(self, name: str, env: dict[str, str] | None = None) -> int:
        """Stop (SIGKILL) and start again."""
        if self.alive(name):
            self.kill(name)
        return self.start(name, env)

    def metrics(self, name: str = "repairer") -> dict[str, float]:
        """A service's ``/metrics`` (its ``metrics_url``), sample name -> value (unlabelled ones)."""
        import httpx

        text = httpx.get(f"{self.service(name)['metrics_url']}/metrics", timeout=10).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out

    def log(self, name: str) -> str:
        return Path(self.service(name)["log"]).read_text(errors="replace")

    def crashed_at(self, name: str, point: str) -> bool:
        """Whether the service's last run ended at crash point ``point``."""
        lines = [line for line in self.log(name).splitlines() if "crash point reached" in line]
        return bool(lines) and f'"point": "{point}"' in lines[-1]

    def heal(self) -> None:
        """Bring every service back up with the normal environment."""
        for entry in self.services():
            if not is_running(int(entry["pid"])):
                self.start(entry["name"])

    def reactivate_failed(self) -> None:
        """Every holder a test got failed on chain (by the admin, or proven wrong shards)
        back to Active, once its agent takes data again."""
        chain = self.fresh_chain()
        for name in self.holder_names():
            if chain.holders.holder(self.address(name)).status == HolderStatus.FAILED:
                chain.holders.activate(self.account("admin"), self.address(name))
                self.wait_for(f"{name} to take data again", lambda n=name: unready_holders(
                    {self.address(n): self.service(n)["endpoint"]}) == {}, 30)

    # --- chain --------------------------------------------------------------------

    def rpc(self, method: str, params: list[Any]) -> Any:
        reply = self.chain.client.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return reply.get("result")

    def events(self, contract: str, name: str, **filters: Any) -> list[Any]:
        target = {"retrievals": self.chain.retrievals, "datasets": self.chain.datasets}[contract]
        event = getattr(target.contract.events, name)()
        return list(event.get_logs(from_block=0, argument_filters=filters or None))

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60,
                 detail: Callable[[], str] | None = None) -> None:
        """Poll ``check`` until it holds; on time-out fail naming ``what`` (and ``detail()``)."""
        deadline = time.monotonic() + timeout
        while not _safe(check):
            if time.monotonic() > deadline:
                more = f"\n{detail()}" if detail is not None else ""
                raise AssertionError(f"timed out after {timeout} s waiting for {what}{more}")
            time.sleep(0.2)

    def deliveries(self, request_id: int) -> dict[str, int]:
        """Holder name -> number of FragmentsDelivered events for the request."""
        return self._per_holder("FragmentsDelivered", request_id)

    def releases(self, request_id: int) -> dict[str, int]:
        """KOS member name -> number of its ``SharesReleased`` events for the request."""
        names = {m["address"].lower(): m["name"] for m in self.info["kos_members"]}
        counts: dict[str, int] = {}
        for release in self.chain.committee.releases(request_id):
            if release.released:
                name = names[release.member.lower()]
                counts[name] = counts.get(name, 0) + 1
        return counts

    def tokens(self, request_id: int) -> dict[str, int]:
        """Holder name -> number of TokenIssued events for the request."""
        return self._per_holder("TokenIssued", request_id)

    def _per_holder(self, event: str, request_id: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for log in self.events("retrievals", event, requestId=request_id):
            name = self.name_of(log["args"]["holder"])
            counts[name] = counts.get(name, 0) + 1
        return counts

    def fetch(self, request_id: int, out: Path, *extra: str, check: int | None = 0
              ) -> subprocess.CompletedProcess[str]:
        return self.run("fetch", str(request_id), "-o", str(out), *extra, check=check)


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def no_partial_files(root: Path) -> list[Path]:
    """Temporary or half-written files anywhere below ``root`` (should be none).

    Only meaningful while nothing writes below ``root``: a running agent's atomic writes
    (``shardkey.fsutil``: a ``.<name>.*.part`` beside the target, renamed over it) are in
    flight at any moment, e.g. its cursor several times a second. Stop the agent first
    (:meth:`Net.stop`); whatever is left then was left for good.
    """
    return [p for p in root.rglob("*") if p.is_file() and (p.name.endswith(".part")
                                                           or p.parent.name == "incoming")]


def up(home: Path, *args: str) -> Net:
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    proc = subprocess.run([sys.executable, "-m", "shardkey", "--home", str(home), "devnet", "up",
                           "--block-time", "0.25", *args], capture_output=True, text=True,
                          timeout=240, env=env, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"devnet up failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"devnet up in {time.monotonic() - started:.1f} s")
    return Net(home)


def down(home: Path) -> None:
    subprocess.run([sys.executable, "-m", "shardkey", "--home", str(home), "devnet", "down"],
                   capture_output=True, timeout=120, check=False)


def running(tmp_path_factory: pytest.TempPathFactory, holders: int,
            repairer: bool = False) -> Iterator[Net]:
    """A devnet of ``holders`` holders and the default KOS committee (3 members, threshold 2),
    taken down afterwards (a fixture's body).

    Without the repair service unless ``repairer``: these tests lose, corrupt and repair
    shards by hand and check the exact events that follow.
    """
    home = tmp_path_factory.mktemp("devnet")
    network = up(home, "--holders", str(holders), *(() if repairer else ("--no-repairer",)))
    try:
        yield network
    finally:
        down(home)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """A devnet of 5 holders and a KOS committee of 3 (threshold 2) for the tests of one module."""
    yield from running(tmp_path_factory, 5)


@pytest.fixture(autouse=True)
def _healed(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, every service of the module's devnet runs again and every holder is
    Active again."""
    yield
    if "net" in request.fixturenames:
        net = request.getfixturevalue("net")
        net.heal()
        net.reactivate_failed()


__all__ = ["CRASH_STATUS", "Net", "down", "no_partial_files", "running", "up"]
