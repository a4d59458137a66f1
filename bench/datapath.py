"""The data path, measured per process (``--only datapath``; the one place that measures a
store or a fetch, used by the far section too).

For each size (128 MiB and 1 GiB; 4 GiB with ``--large``; ``--sizes``), on the suite's devnet:
a **cold** store and fetch, then a **warm** store and fetch of the same file. Cold: the page
cache is dropped (``sync``, then ``1`` into ``/proc/sys/vm/drop_caches``) just before the
store (the source file, and the Python modules, come from disk) and again just before the
fetch (the holders' shard files come from disk). Where that write is not permitted, the files
concerned are evicted one by one instead (``fsync``, ``posix_fadvise(DONTNEED)``) and the
label says so. Warm: the source was read just before the store, the shards were written by
that store just before the fetch.

Per command: wall time from process start to exit; the client's CPU (user + system, ``wait4``
rusage) and peak RSS; each holder's CPU from ``/proc/<pid>/stat`` before and after, divided
by the bytes that holder received (store) or served (fetch). Those bytes come from the
layout: each holder's shard count times the stored shard length (the placement rule of the
dataset's parameters; a fetch reads the ``k`` data shards of every stripe, so parity holders
serve nothing and are shown apart, with their CPU). Max and median over the holders that
moved bytes, as measured and above each holder's idle rate (its CPU per second at rest,
measured over a few seconds before the first run, times the command's wall time); the
committee members' and anvil's CPU over the same window. CPU per GiB for
the client is per GiB of file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardkey.devnet.network import free_ports

__all__ = ["free_ports"]  # for the tahoe and far sections

GiB = 1 << 30
MiB = 1 << 20
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
IDLE_WINDOW = 3.0  # seconds of rest over which the services' idle CPU is measured


def wait_listening(port: int, timeout: float, procs: list[subprocess.Popen[bytes]]) -> None:
    """Until something accepts on loopback ``port``; fails if one of ``procs`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s") from None
            time.sleep(0.05)


def warm_file(path: Path) -> None:
    """Read ``path`` once, so that its pages are in the page cache."""
    with open(path, "rb", buffering=0) as handle:
        block = bytearray(16 * MiB)
        while handle.readinto(block):
            pass


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class PageCache:
    """Makes files cold: the whole page cache when permitted, else the files one by one."""

    def __init__(self) -> None:
        self.method = "drop_caches" if self._drop() else "fadvise"

    @staticmethod
    def _drop() -> bool:
        subprocess.run(["sync"], check=False)  # noqa: S607 - dirty pages cannot be dropped
        try:
            DROP_CACHES.write_text("1\n")
        except OSError:
            return False
        return True

    @property
    def label(self) -> str:
        if self.method == "drop_caches":
            return "page cache dropped (sync; echo 1 > /proc/sys/vm/drop_caches) before each command"
        return ("cold-ish: drop_caches not permitted here, so only the files concerned were evicted "
                "(fsync + posix_fadvise DONTNEED; the Python modules stay cached)")

    def cold(self, paths: list[Path]) -> None:
        if self.method == "drop_caches" and self._drop():
            return
        self.method = "fadvise"
        for path in paths:
            with contextlib.suppress(OSError):
                _evict(path)


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@dataclass
class Services:
    """The devnet's long-running processes, by role."""

    holders: dict[str, tuple[str, int]]  # address -> (name, pid)
    members: dict[str, int]
    anvil: int
    idle: dict[str, float] | None = None  # CPU s per s of each process at rest (measure_idle)

    @classmethod
    def of(cls, info: dict[str, Any]) -> Services:
        members = {m.get("name", f"member-{i + 1}"): int(m["pid"]) for i, m in enumerate(info["kos_members"])}
        return cls({h["address"]: (h["name"], int(h["pid"])) for h in info["holders"]}, members,
                   int(info["anvil"]["pid"]))

    def measure_idle(self, window: float = IDLE_WINDOW) -> dict[str, float]:
        """What each process burns doing nothing (chain polling), CPU s per s over ``window``."""
        before = self.snapshot()
        time.sleep(window)
        after = self.snapshot()
        self.idle = {k: (after[k] - before[k]) / window for k in after}
        return self.idle

    def snapshot(self) -> dict[str, float]:
        from bench.suite import process_cpu_seconds
        pids = {name: pid for name, pid in self.holders.values()}
        pids.update({f"kos:{n}": pid for n, pid in self.members.items()})
        cpu = {}
        for name, pid in pids.items():
            try:
                cpu[name] = process_cpu_seconds(pid)
            except (OSError, ValueError, IndexError):
                cpu[name] = float("nan")
        # devnet.json names anvil's npm wrapper; the chain is its child process
        cpu["anvil"] = sum(_cpu_or_zero(pid) for pid in [self.anvil, *_children(self.anvil)])
        return cpu


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_or_zero(pid: int) -> float:
    from bench.suite import process_cpu_seconds
    try:
        return process_cpu_seconds(pid)
    except (OSError, ValueError, IndexError):
        return 0.0


def layout_bytes(dev: Any, dataset: str) -> tuple[dict[str, int], dict[str, int]]:
    """Bytes each holder (by address) received on store and serves on a fetch of ``dataset``."""
    from shardkey.chain.placement import rule_holders
    from shardkey.crypto.stripe import stored_shard_length
    params = dev.chain().datasets.dataset(bytes.fromhex(dataset[2:])).params
    length = stored_shard_length(params.shard_size)
    holders = rule_holders(params)
    stored = Counter(holders)
    served = Counter(h for i, h in enumerate(holders) if i % params.m < params.k)
    return ({h: n * length for h, n in stored.items()}, {h: served.get(h, 0) * length for h in stored})


def measured(dev: Any, argv: list[str], size: int, services: Services) -> tuple[Any, dict[str, Any]]:
    """Run one CLI command; its figures and those of every devnet service over its run."""
    from bench import suite as s
    before = services.snapshot()
    run = s.run_measured(argv)
    after = services.snapshot()
    if run.returncode != 0:
        raise RuntimeError(f"shardkey {' '.join(argv[5:7])} exited {run.returncode}: {run.stderr[-3000:]}")
    cpu = {k: after[k] - before[k] for k in after}
    gib = size / GiB
    return run, {"seconds": run.seconds, "MBps": size / run.seconds / 1e6, "cpu_s": run.cpu_seconds,
                 "cpu_s_per_gib": run.cpu_seconds / gib, "peak_rss_mib": run.peak_rss_mib,
                 "timings": run.json().get("timings", {}), "services_cpu_s": cpu,
                 "committee_cpu_s": sum(v for k, v in cpu.items() if k.startswith("kos:")),
                 "anvil_cpu_s": cpu["anvil"]}


def per_holder(figures: dict[str, Any], moved: dict[str, int], services: Services) -> None:
    """Add each holder's CPU per GiB it moved, and max/median over the holders that moved bytes."""
    rows, idle = {}, {}
    for address, (name, _) in services.holders.items():
        cpu, n = figures["services_cpu_s"][name], moved.get(address, 0)
        rest = (services.idle or {}).get(name, 0.0) * figures["seconds"]
        if n:
            rows[name] = {"cpu_s": cpu, "bytes": n, "cpu_s_per_gib": cpu / (n / GiB),
                          "above_idle_cpu_s_per_gib": (cpu - rest) / (n / GiB)}
        else:
            idle[name] = cpu
    for key in ("cpu_s_per_gib", "above_idle_cpu_s_per_gib"):
        per_gib = [r[key] for r in rows.values()]
        figures[f"holder_{key}_max"] = max(per_gib, default=0.0)
        figures[f"holder_{key}_median"] = statistics.median(per_gib) if per_gib else 0.0
    figures.update(holders=rows, idle_holders_cpu_s=idle)


def store_fetch(suite: Any, dev: Any, size: int, cache: PageCache | None, base: float,
                idle: dict[str, float]) -> dict[str, Any]:
    """One store and one fetch of the suite's ``size`` file; ``cache`` None means warm."""
    from bench import suite as s
    services = Services.of(dev.info)
    services.idle = idle
    src, expected = suite.source(size)
    if cache is None:
        warm_file(src)
    else:
        cache.cold([src])
    run, store = measured(dev, dev.argv("store", str(src), "--policy", str(suite.open_policy), "--json",
                                   *suite.shard_args()),
                          size, services)
    dataset = run.json()["dataset"]
    stored, served = layout_bytes(dev, dataset)
    shard_size = dev.chain().datasets.dataset(bytes.fromhex(dataset[2:])).params.shard_size
    per_holder(store, stored, services)
    request_run = dev.run("request", dataset, "--json")
    request = int(request_run.json()["request"])
    out = suite.work / f"out-{size}.bin"
    if cache is not None:
        cache.cold([f for h in dev.info["holders"] for f in _files_under(Path(h["data_dir"]) / "store")])
    _, fetch = measured(dev, dev.argv("fetch", str(request), "-o", str(out), "--json"), size, services)
    per_holder(fetch, served, services)
    ok = s.file_sha256(out) == expected
    out.unlink()
    for figures in (store, fetch):
        figures["ratio"] = size / figures["seconds"] / base
    return {"size": size, "label": s.size_label(size), "cache": "warm" if cache is None else "cold",
            "cache_method": "warm" if cache is None else cache.method,
            "dataset": dataset, "shard_size": shard_size, "request_s": request_run.seconds,
            "store": store, "fetch": fetch,
            "verified": ok, "bytes_stored": sum(stored.values()), "bytes_served": sum(served.values())}


def run_datapath(suite: Any, sizes: list[int]) -> dict[str, Any]:
    """Cold, then warm, store and fetch of every size."""
    from bench import suite as s
    cache = PageCache()
    idle = Services.of(suite.dev.info).measure_idle()
    runs = []
    for size in sizes:
        base = s.baseline(size)
        for variant in (cache, None):
            r = store_fetch(suite, suite.dev, size, variant, base, idle)
            r["baseline_MBps"] = base / 1e6
            runs.append(r)
            s.log(f"datapath {r['label']} {r['cache']}: " + "; ".join(
                f"{op} {f['seconds']:.2f} s, "
                f"client {f['cpu_s_per_gib']:.2f} CPU s/GiB, holders (above idle) max "
                f"{f['holder_above_idle_cpu_s_per_gib_max']:.2f} median "
                f"{f['holder_above_idle_cpu_s_per_gib_median']:.2f} s/GiB, "
                f"RSS {f['peak_rss_mib']:.0f} MiB" for op, f in (("store", r["store"]), ("fetch", r["fetch"]))
            ))
    return {"cache_method": cache.method, "cache_label": cache.label, "runs": runs,
            "idle_cpu_s_per_s": idle, "idle_window_s": IDLE_WINDOW}


def legacy_throughput(datapath: dict[str, Any]) -> list[dict[str, Any]]:
    """The warm runs in the shape of the old ``throughput`` rows (same metric names in the table)."""
    rows = []
    for r in datapath["runs"]:
        if r["cache"] != "warm":
            continue
        for op in ("store", "fetch"):
            f = r[op]
            rows.append({"op": op, "size": r["size"], "label": r["label"], "seconds": f["seconds"],
                         "MBps": f["MBps"], "baseline_MBps": r["baseline_MBps"], "ratio": f["ratio"],
                         "peak_rss_mib": f["peak_rss_mib"], "timings": f["timings"],
                         "verified": r["verified"]})
    return rows
