"""The benchmark suite: a fresh devnet, the CLI as subprocesses, figures as ratios.

Every throughput figure is divided by a baseline measured in the same run, just before
it: single-core AES-256-GCM (``cryptography``) plus SHA-256 (``hashlib``) over the same
number of bytes. Peak memory is the child's own ``ru_maxrss`` from ``os.wait4``.
Nothing here asserts a timing; targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.report import write_markdown

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
GiB = 1 << 30
OPEN_POLICY = "requesters: [requester]\nthreshold: 3\n"
APPROVAL_POLICY = """\
requesters: [requester]
approvals:
  - {group: client, members: [client-rep], required: 1}
  - {group: provider, members: [provider-rep], required: 1}
threshold: 3
"""
SINGLE_MEMBER = ("--kos", "1", "--kos-threshold", "1")  # the baseline KOS: one member, threshold one
# kos runs last on the shared devnet: it leaves the chain mining on a 1 s interval.
# repair, committee and holders bring up devnets of their own.
SECTIONS = ("devnet", "datapath", "far", "tahoe", "small", "gas", "redeal", "repair", "scale",
            "kos", "committee", "holders")
OWN_DEVNET = ("repair", "committee", "holders", "tahoe")
ALIASES = {"throughput": "datapath"}  # the datapath section replaced the throughput section
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shardkey-bench"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- machine and baseline ------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = shutil.which("git")
    rev, dirty = "", False
    if git:
        rev = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,  # noqa: S603
                             text=True, check=False).stdout.strip()
        dirty = bool(subprocess.run([git, "status", "--porcelain", "--untracked-files=no"],  # noqa: S603
                                    cwd=REPO, capture_output=True, text=True, check=False).stdout.strip())
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_at_start": list(os.getloadavg()),
            "git": rev + ("+dirty" if dirty else ""),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def baseline(size: int, repeats: int = 3) -> float:
    """Bytes per second of single-core AES-256-GCM + SHA-256 over ``size`` bytes (median)."""
    block = os.urandom(16 * MiB)
    view = memoryview(block)
    chunk = MiB
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    rates = []
    for _ in range(repeats):
        digest = hashlib.sha256()
        done = 0
        started = time.perf_counter()
        while done < size:
            off = done % len(block)
            n = min(chunk, size - done, len(block) - off)
            digest.update(aead.encrypt(nonce, view[off:off + n], None))
            done += n
        rates.append(size / (time.perf_counter() - started))
    return statistics.median(rates)


# --- processes ----------------------------------------------------------------------


@dataclass
class Run:
    argv: list[str]
    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # the child's user + system CPU (wait4 rusage)

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_measured(argv: list[str], timeout: float = 1800.0, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> Run:
    """Run a child; wall time from start to exit, its own peak RSS and CPU (``wait4``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env,  # noqa: S603
                                cwd=cwd)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(argv, seconds, usage.ru_maxrss / 1024, proc.returncode,
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   usage.ru_utime + usage.ru_stime)


class Devnet:
    """``shardkey --home HOME ...`` as subprocesses, plus in-process chain access."""

    def __init__(self, home: Path):
        self.home = home

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "shardkey", "--home", str(self.home), *args]

    def run(self, *args: str, timeout: float = 1800.0) -> Run:
        result = run_measured(self.argv(*args), timeout)
        if result.returncode != 0:
            raise RuntimeError(f"shardkey {' '.join(args)} exited {result.returncode}:\n"
                               f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return result

    def up(self, holders: int = 5, *extra: str) -> float:
        """``devnet up`` with a 1-of-1 KOS committee (the KOS every section but ``committee``
        uses) and ``extra`` options."""
        args = ("devnet", "up", "--holders", str(holders), *SINGLE_MEMBER, *extra)
        return self.run(*args, timeout=600).seconds

    def kos_pids(self) -> list[int]:
        """The KOS committee members' process ids."""
        return [int(m["pid"]) for m in self.info["kos_members"]]

    def down(self) -> None:
        run_measured(self.argv("devnet", "down"), 600)  # minutes at load 50: 120 s left a devnet up

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.home / "devnet.json").read_text())
        return info

    def chain(self) -> Any:
        from shardkey.chain.bindings import ShardKeyChain
        from shardkey.chain.deployment import Deployment
        return ShardKeyChain(Deployment.load(Path(self.info["deployment"])))

    def account(self, name: str) -> Any:
        from shardkey.keys import load_account_file
        return load_account_file(Path(self.info["accounts"][name]["key_file"]))

    def store(self, path: Path, policy: Path, *extra: str) -> tuple[Run, dict[str, Any]]:
        result = self.run("store", str(path), "--policy", str(policy), "--json", *extra)
        return result, result.json()

    def request(self, dataset: str) -> int:
        return int(self.run("request", dataset, "--json").json()["request"])

    def fetch(self, request: int, out: Path) -> tuple[Run, dict[str, Any]]:
        result = self.run("fetch", str(request), "-o", str(out), "--json")
        return result, result.json()


def compile_bytecode() -> None:
    """Compile the project's modules to ``__pycache__`` once, as installing a package does.

    The CLI processes measured here would otherwise compile every ShardKey module from
    source at each start wherever ``PYTHONDONTWRITEBYTECODE`` is set (it is on the
    machines these figures come from): ~0.1 s per process that no installed copy pays.
    """
    import compileall
    for package in ("shardkey", "kos", "holder_agent"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a running process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes; return their SHA-256 hex."""
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MiB))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(16 * MiB):
            digest.update(block)
    return digest.hexdigest()


def size_label(size: int) -> str:
    return f"{size // GiB} GiB" if size >= GiB else f"{size // MiB} MiB" if size >= MiB else f"{size} B"


# --- sections -------------------------------------------------------------------------


class Suite:
    def __init__(self, args: argparse.Namespace, work: Path, sections: list[str]):
        self.args = args
        self.sections = sections
        self.work = work
        self.dev = Devnet(work / "devnet")
        self.results: dict[str, Any] = {}
        self.open_policy = work / "open.yaml"
        self.open_policy.write_text(OPEN_POLICY)
        self.approval_policy = work / "approval.yaml"
        self.approval_policy.write_text(APPROVAL_POLICY)
        self._sources: dict[int, tuple[Path, str]] = {}

    def shard_args(self) -> list[str]:
        """``--shard-size`` for the data path's stores, when the suite was given one."""
        return ["--shard-size", str(self.args.shard_size)] if self.args.shard_size else []

    def rpc(self, method: str, params: list[Any], dev: Devnet | None = None) -> Any:
        import httpx
        reply = httpx.post((dev or self.dev).info["rpc_url"], timeout=60,
                           json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def gas_of(self, tx_hash: str, dev: Devnet | None = None) -> dict[str, int]:
        receipt = self.rpc("eth_getTransactionReceipt", [tx_hash], dev)
        tx = self.rpc("eth_getTransactionByHash", [tx_hash], dev)
        data = bytes.fromhex(tx["input"][2:])
        calldata = sum(16 if b else 4 for b in data)
        return {"gas": int(receipt["gasUsed"], 16), "calldata_bytes": len(data), "calldata_gas": calldata}

    # devnet ------------------------------------------------------------------------
    def section_devnet(self) -> None:
        seconds = self.dev.up(5)
        self.results["devnet_up_5"] = {"seconds": seconds}
        log(f"devnet up (5 holders): {seconds:.1f} s")

    # data path (bench/datapath.py), Tahoe-LAFS (bench/tahoe.py), far holders (bench/far.py) ------------
    def sizes(self) -> list[int]:
        """File sizes of the datapath and tahoe sections."""
        if self.args.sizes:
            return [n * MiB for n in self.args.sizes]
        sizes = [32 * MiB] if self.args.quick else [128 * MiB, GiB]
        return [*sizes, 4 * GiB] if self.args.large else sizes

    def source(self, size: int) -> tuple[Path, str]:
        """The random file of ``size`` bytes every section stores (written once), and its SHA-256."""
        if size not in self._sources:
            path = self.work / f"in-{size}.bin"
            self._sources[size] = (path, random_file(path, size))
        return self._sources[size]

    def section_datapath(self) -> None:
        from bench.datapath import legacy_throughput, run_datapath
        self.results["datapath"] = run_datapath(self, self.sizes())
        self.results["throughput"] = legacy_throughput(self.results["datapath"])

    def section_tahoe(self) -> None:
        from bench.tahoe import run_tahoe
        self.results["tahoe"] = run_tahoe(self, self.sizes())

    def section_far(self) -> None:
        from bench.far import describe, run_far
        size = (self.args.far_size or (256 if self.args.quick else 1024)) * MiB
        self.results["far"] = run_far(self, size, self.args.far_rtts, self.args.far_mbit)
        log(f"far holders: {describe(self.results['far'])}")

    def section_small(self) -> None:
        runs = self.args.small_runs
        src = self.work / "small.bin"
        expected = random_file(src, MiB)
        stores, fetches = [], []
        for _ in range(runs):
            store_run, stored = self.dev.store(src, self.open_policy, *self.shard_args())
            stores.append((store_run, stored))
        # A request is made at a random point of the devnet's block interval, as a user's is: the
        # fetch waits for the request and then the token to be a block deep, so back to back
        # runs (each request lands the same time after the last fetch's final block) would
        # measure one phase only, here the worst one.
        phases = random.Random(15)  # noqa: S311 - a measurement schedule, not a secret
        for _, stored in stores:
            time.sleep(phases.uniform(0.0, self.dev.info["block_time"]))
            request = self.dev.request(stored["dataset"])
            out = self.work / "small.out"
            fetch_run, fetched = self.dev.fetch(request, out)
            if file_sha256(out) != expected:
                raise RuntimeError("1 MiB fetch restored different bytes")
            fetches.append((fetch_run, fetched))
        self.results["small"] = {
            "runs": runs,
            "store": _summary([r for r, _ in stores], [s["timings"] for _, s in stores]),
            "fetch": _summary([r for r, _ in fetches], [s["timings"] for _, s in fetches]),
            "process_start_s": statistics.median(
                run_measured([sys.executable, "-m", "shardkey", "--help"]).seconds for _ in range(3)),
        }
        log(f"1 MiB: {self.results['small']}")

    # gas -----------------------------------------------------------------------------------
    def section_gas(self) -> None:
        counts = [10, 100, 1000] if self.args.quick else [10, 100, 1000, 10_000]
        shard_size = 1024
        chain = self.dev.chain()
        rows = []
        for count in counts:
            stripes = count // 5
            src = self.work / f"gas-{count}.bin"
            random_file(src, stripes * 3 * shard_size)
            run, stored = self.dev.store(src, self.open_policy, "--shard-size", str(shard_size))
            register = self.gas_of(stored["tx"])
            dataset_id = bytes.fromhex(stored["dataset"][2:])
            custody = self._event_gas(chain.datasets.contract.events.CustodyConfirmed,
                                      {"datasetId": dataset_id})
            rows.append({"shards": count, "register": register, "custody_txs": len(custody),
                         "custody_gas_each": max(custody) if custody else 0,
                         "store_seconds": run.seconds})
            if count == 10_000 and "scale" in self.sections:
                # The 10,000-shard registration doubles as the scale check.
                self._scale_check(src, file_sha256(src), run, stored, shard_size)
            log(f"gas at {count} shards: register {register}, custody {custody}")
            src.unlink()
        steps = self._retrieval_gas(chain)
        self.results["gas"] = {"registration": rows, "retrieval": steps}

    def _event_gas(self, event: Any, filters: dict[str, Any], from_block: int = 0,
                   dev: Devnet | None = None) -> list[int]:
        logs = event().get_logs(from_block=from_block, argument_filters=filters)
        hashes = list(dict.fromkeys("0x" + bytes(entry["transactionHash"]).hex() for entry in logs))
        return [self.gas_of(h, dev)["gas"] for h in hashes]

    def _retrieval_gas(self, chain: Any) -> dict[str, Any]:
        src = self.work / "gas-retrieval.bin"
        random_file(src, MiB)
        _, stored = self.dev.store(src, self.approval_policy)
        request = self.dev.request(stored["dataset"])
        self.dev.run("approve", str(request), "--as", "client-rep", "--yes")
        self.dev.run("approve", str(request), "--as", "provider-rep", "--yes")
        out = self.work / "gas-retrieval.out"
        self.dev.fetch(request, out)
        events = chain.retrievals.contract.events
        filt = {"requestId": request}
        steps = {}
        for name, event in (("requestRetrieval", events.RetrievalRequested),
                            ("approve (each)", events.ApprovalRecorded),
                            ("issueTokens (one tx, all holders)", events.TokenIssued),
                            ("deliverFragments (each holder)", events.FragmentsDelivered),
                            ("completeRetrieval", events.RetrievalCompleted)):
            gas = self._event_gas(event, filt)
            steps[name] = {"txs": len(gas), "gas_each": max(gas) if gas else 0, "gas_total": sum(gas)}
        log(f"retrieval gas: {steps}")
        return steps

    # re-deal -----------------------------------------------------------------------------------
    def section_redeal(self) -> None:
        """Gas of one ``shardkey redeal`` of a 1 MiB dataset to a new set of 5 holders, every
        transaction of it (the owner's request, the KOS's tokens, the old holders' deliveries,
        the re-deal, the new holders' confirmations, the completion), and its wall time."""
        chain = self.dev.chain()
        policy = self.work / "redeal.yaml"
        policy.write_text("requesters: [requester, owner]\nthreshold: 3\n")
        src = self.work / "redeal.bin"
        random_file(src, MiB)
        _, stored = self.dev.store(src, policy)
        dataset_id = bytes.fromhex(stored["dataset"][2:])
        run = self.dev.run("redeal", stored["dataset"], "--json")
        summary = run.json()
        rid, epoch = int(summary["request"]), int(summary["epoch"])
        retrievals = chain.retrievals.contract.events
        datasets = chain.datasets.contract.events
        steps = {}
        for name, event, filt in (
                ("requestRedeal", retrievals.RedealRequested, {"requestId": rid}),
                ("issueTokens (one tx, all holders)", retrievals.TokenIssued, {"requestId": rid}),
                ("deliverFragments (each old holder)", retrievals.FragmentsDelivered, {"requestId": rid}),
                ("redealFragments", datasets.FragmentsRedealt, {"datasetId": dataset_id, "epoch": epoch}),
                ("confirmFragmentCustody (each new holder)", datasets.FragmentCustodyConfirmed,
                 {"datasetId": dataset_id, "epoch": epoch}),
                ("completeRetrieval", retrievals.RetrievalCompleted, {"requestId": rid})):
            gas = self._event_gas(event, filt)
            steps[name] = {"txs": len(gas), "gas_each": max(gas) if gas else 0, "gas_total": sum(gas)}
        total = sum(step["gas_total"] for step in steps.values())
        self.results["redeal"] = {"steps": steps, "gas_total": total, "seconds": run.seconds,
                                  "holders": len(summary["fragment_holders"])}
        log(f"re-deal gas: {steps}; total {total:,} in {run.seconds:.1f} s")

    # repair --------------------------------------------------------------------------------------------
    def section_repair(self) -> None:
        """A failed holder's shards rebuilt and placed elsewhere by ``shardkey repair`` (bench/repair.py)."""
        from bench.repair import run_repair
        size = (self.args.repair_size or (32 if self.args.quick else 64)) * MiB
        self.results["repair"] = r = run_repair(self, size)
        log(f"repair of {r['shards_lost']} shards ({size_label(r['lost_bytes'])}): {r['seconds']:.1f} s, "
            f"{r['ratio']:.3f}x baseline; gas {r['gas_per_shard']:,.0f} per shard, {r['gas_total']:,} in all")

    # KOS ----------------------------------------------------------------------------------------
    def section_kos(self) -> None:
        """100 requests in one block, one KOS (a 1-of-1 committee member): seconds until every
        request has all its tokens."""
        from bench.kosload import BLOCK_TIME_S, burst, request_blocks
        count = 100
        chain = self.dev.chain()
        src = self.work / "kos.bin"
        random_file(src, 4096)
        _, stored = self.dev.store(src, self.open_policy, "--shard-size", "4096")
        dataset_id = bytes.fromhex(stored["dataset"][2:])
        holders = len(chain.datasets.dataset(dataset_id).params.fragment_holders)
        b = burst(self, self.dev, dataset_id, holders, count, self.dev.kos_pids())
        self.results["kos"] = {"requests": count, "blocks": request_blocks(chain, b), "seconds": b.seconds,
                               "block_time_s": BLOCK_TIME_S, "all_tokens": b.settled_at is not None,
                               "kos_cpu_s": b.cpu_seconds, "tokens_per_s": count * holders / b.seconds,
                               "requests_per_s": count / b.seconds}
        log(f"KOS: {self.results['kos']}")

    def section_committee(self) -> None:
        """The threshold KOS committee: 3 of 2 and 5 of 3 under the same burst (bench/committee.py)."""
        from bench.committee import run_committee
        self.results["committee"] = run_committee(self)
        log(f"committee: {self.results['committee']}")

    # scale ------------------------------------------------------------------------------------------
    def section_scale(self) -> None:
        if "scale" in self.results:
            return  # done by the gas section
        shard_size = 256
        stripes = 2000
        src = self.work / "scale.bin"
        expected = random_file(src, stripes * 3 * shard_size)
        store_run, stored = self.dev.store(src, self.open_policy, "--shard-size", str(shard_size))
        self._scale_check(src, expected, store_run, stored, shard_size)

    def _scale_check(self, src: Path, expected: str, store_run: Run, stored: dict[str, Any],
                     shard_size: int) -> None:
        request = self.dev.request(stored["dataset"])
        out = self.work / "scale.out"
        fetch_run, _ = self.dev.fetch(request, out)
        restored = file_sha256(out) == expected
        audit = self.dev.run("audit", "verify", stored["dataset"], "--json")
        self.results["scale"] = {"shards": stored["shards"], "shard_size": shard_size,
                                 "store_s": store_run.seconds, "fetch_s": fetch_run.seconds,
                                 "audit_s": audit.seconds, "restored": restored,
                                 "audit_ok": audit.returncode == 0,
                                 "audit": _audit_summary(audit.stdout)}
        log(f"scale: {self.results['scale']}")

    # many holders ------------------------------------------------------------------------------------
    def section_holders(self) -> None:
        count = 20 if self.args.quick else 50
        other = Devnet(self.work / f"devnet-{count}")
        try:
            seconds = other.up(count)
        finally:
            other.down()
        self.results["devnet_up_many"] = {"holders": count, "seconds": seconds}
        log(f"devnet up (--holders {count}): {seconds:.1f} s")


def _summary(runs: list[Run], timings: list[dict[str, float]]) -> dict[str, Any]:
    phases = sorted({k for t in timings for k in t})
    return {"median_s": statistics.median(r.seconds for r in runs),
            "all_s": [round(r.seconds, 3) for r in runs],
            "peak_rss_mib": max(r.peak_rss_mib for r in runs),
            "phases_median_s": {p: statistics.median(t.get(p, 0.0) for t in timings) for p in phases}}


def _audit_summary(stdout: str) -> Any:
    try:
        data = json.loads(stdout)
    except ValueError:
        return stdout[-500:]
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if not isinstance(v, list | dict)}
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="CI-sized figures (32 MiB, fewer shards, 20 holders)")
    parser.add_argument("--large", action="store_true", help="also store and fetch 4 GiB")
    parser.add_argument("--only", nargs="+", choices=[*SECTIONS, *ALIASES], default=None,
                        help="run only these sections (throughput is an old name of datapath)")
    parser.add_argument("--no-tahoe", action="store_true", help="skip the Tahoe-LAFS peer (tahoe section)")
    parser.add_argument("--no-far", action="store_true", help="skip the far-holders section")
    parser.add_argument("--cache", type=Path, default=CACHE,
                        help=f"folder kept between runs (the tahoe-lafs virtualenv; default {CACHE})")
    parser.add_argument("--far-size", type=int, default=None, metavar="MIB",
                        help="file size of the far section (default 1024; 256 with --quick)")
    parser.add_argument("--far-rtts", type=float, nargs="+", default=[20, 50, 80, 120, 150], metavar="MS",
                        help="round-trip times of the holders' links, by region (default 20 50 80 120 150)")
    parser.add_argument("--far-mbit", type=float, default=100.0,
                        help="bandwidth cap of each holder's link, each direction (Mbit/s, default 100)")
    parser.add_argument("--small-runs", type=int, default=9,
                        help="1 MiB stores and fetches (default 9: a fetch spreads over a block interval)")
    parser.add_argument("--shard-size", type=int, default=None, metavar="BYTES",
                        help="largest shard of the datapath, far and small stores (default: the CLI's)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, metavar="MIB",
                        help="datapath and tahoe file sizes in MiB (default 128 1024; 4096 added by --large)")
    parser.add_argument("--repair-size", type=int, default=None, metavar="MIB",
                        help="size of the file the repair section stores (default 64; 32 with --quick)")
    parser.add_argument("--out", type=Path, default=REPO / "bench", help="where results.json/.md go")
    parser.add_argument("--merge", action="store_true",
                        help="update the sections run in an existing results.json, keep the others")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and the devnet up")
    args = parser.parse_args(argv)
    only = {ALIASES.get(name, name) for name in (args.only or SECTIONS)}
    skipped = {"tahoe"} if args.no_tahoe else set()
    skipped |= {"far"} if args.no_far else set()
    sections = [s for s in SECTIONS if s in only and s not in skipped]
    work = Path(tempfile.mkdtemp(prefix="shardkey-bench-"))
    suite = Suite(args, work, sections)
    given = argv if argv is not None else sys.argv[1:]
    command = "python -m bench " + " ".join(shlex.quote(a) for a in given)
    results: dict[str, Any] = {"command": command.strip(), "machine": machine(), "sections": sections}
    log(f"work folder {work}; sections {', '.join(sections)}")
    started = time.monotonic()
    compile_bytecode()
    try:
        needs_devnet = [s for s in sections if s not in OWN_DEVNET]
        if needs_devnet:
            suite.section_devnet()
        for name in sections:
            if name == "devnet":
                continue
            if name == "holders":
                suite.dev.down()
            try:
                getattr(suite, f"section_{name}")()
            except Exception as exc:  # a failed section is reported, the others still run
                log(f"section {name} failed: {exc}")
                suite.results.setdefault("failures", {})[name] = str(exc)[-2000:]
    finally:
        if not args.keep:
            suite.dev.down()
        if args.merge and (args.out / "results.json").exists():
            old = json.loads((args.out / "results.json").read_text())
            old.pop("failures", None)
            old["commands"] = [*old.get("commands", [old.get("command", "")]), results["command"]]
            old.update({k: v for k, v in results.items() if k != "command"})
            results = old
        results.update(suite.results)
        results["suite_seconds"] = time.monotonic() - started
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        write_markdown(results, args.out / "results.md", REPO / "bench" / "results_before.json")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 1 if results.get("failures") else 0
