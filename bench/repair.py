"""Keyless repair (``shardkey repair``) of a failed holder's shards, measured on its own devnet.

Seven holders of distinct regions, so every stripe (k = 3, p = 2) leaves Active holders of
other regions free for its lost shard. A file is stored, the first shard holder is marked
failed (admin), and ``shardkey repair DATASET --json`` runs as a subprocess. The devnet
runs no repair service (``--no-repairer``): it would repair the shards first, leaving the
command nothing to do. Figures:
wall time against the same-run AES-256-GCM + SHA-256 baseline over the lost bytes
(measured just after the repair); bytes
read and written per GiB lost (from the repair's own report: read = k x written); CPU
seconds per GiB lost of the repair process (``wait4`` rusage) and of the holders
(``/proc/<pid>/stat`` before and after, and the same above their idle rate, measured over
a few seconds before); gas of every ``assignShard`` and
``confirmShardPlacement`` of that run (their ``ShardAssigned`` / ``ShardRepaired`` events).
"""

from __future__ import annotations

import json
import time
from typing import Any

HOLDERS = 7
IDLE_WINDOW = 5.0  # seconds
GiB = 1 << 30
K, P, SHARD_SIZE = 3, 2, 1 << 20  # the store defaults, passed explicitly
CODING = ("--data-shards", str(K), "--parity", str(P), "--shard-size", str(SHARD_SIZE))


def services_cpu(info: dict[str, Any], cpu: Any) -> float:
    """CPU seconds so far of every holder and KOS committee member of the devnet (``/proc``)."""
    total = 0.0
    for entry in [*info.get("holders", []), *info.get("kos_members", [])]:
        try:
            total += cpu(int(entry["pid"]))
        except (OSError, KeyError, ValueError):
            pass
    return total


def _gas_step(gas: list[int]) -> dict[str, Any]:
    return {"txs": len(gas), "gas_min": min(gas, default=0), "gas_max": max(gas, default=0),
            "gas_total": sum(gas)}


def run_repair(suite: Any, size: int) -> dict[str, Any]:
    """Store ``size`` random bytes on a 7-holder devnet, fail one holder, repair, measure."""
    from bench import suite as s

    dev = s.Devnet(suite.work / "devnet-repair")
    try:
        dev.up(HOLDERS, "--no-repairer")
        src = suite.work / "repair-in.bin"
        s.random_file(src, size)
        _, stored = dev.store(src, suite.open_policy, *CODING)
        src.unlink()
        dataset, ds = stored["dataset"], bytes.fromhex(stored["dataset"][2:])
        chain = dev.chain()
        failed = chain.datasets.dataset(ds).params.shard_holders[0]
        chain.holders.mark_failed(dev.account("admin"), failed)
        holders_only = {"holders": dev.info["holders"]}
        idle_before = services_cpu(holders_only, s.process_cpu_seconds)
        time.sleep(IDLE_WINDOW)  # what the holders burn doing nothing (chain polling), for comparison
        idle = (services_cpu(holders_only, s.process_cpu_seconds) - idle_before) / IDLE_WINDOW
        start_block = chain.client.block_number()
        cpu_before = services_cpu(holders_only, s.process_cpu_seconds)
        run = s.run_measured(dev.argv("repair", dataset, "--json"))
        holders_cpu = services_cpu(holders_only, s.process_cpu_seconds) - cpu_before
        if run.returncode != 0:
            raise RuntimeError(f"shardkey repair exited {run.returncode}: {run.stderr[-2000:]}")
        report = run.json()
        shards = report["shards"]
        if not shards or any(r["state"] != "repaired" for r in shards):
            raise RuntimeError(f"repair left shards unrepaired: {json.dumps(shards)[-2000:]}")
        moved = all(chain.datasets.shard_holder_of(ds, r["index"]) == r["new_holder"] for r in shards)
        lost = report["bytes_written"]
        base = s.baseline(lost)  # just after the repair, over the bytes it rebuilt
        events = chain.datasets.contract.events
        gas = {name: _gas_step(suite._event_gas(event, {"datasetId": ds}, start_block + 1, dev))
               for name, event in (("assignShard", events.ShardAssigned),
                                   ("confirmShardPlacement", events.ShardRepaired))}
    finally:
        dev.down()
    gib_lost = lost / GiB
    total = sum(step["gas_total"] for step in gas.values())
    return {"holders": HOLDERS, "size": size, "params": {"k": K, "p": P, "shard_size": SHARD_SIZE},
            "shards_lost": len(shards), "lost_bytes": lost, "stripes": report["stripes_repaired"],
            "seconds": run.seconds, "in_process_seconds": report["seconds"],
            "MBps": lost / run.seconds / 1e6, "baseline_MBps": base / 1e6,
            "ratio": lost / run.seconds / base,
            "bytes_read": report["bytes_read"], "bytes_written": lost,
            "read_per_gib_lost": report["bytes_read"] / gib_lost, "written_per_gib_lost": lost / gib_lost,
            "repairer_cpu_s_per_gib": run.cpu_seconds / gib_lost,
            "holders_cpu_s_per_gib": holders_cpu / gib_lost, "holders_idle_cpu_s_per_s": idle,
            "holders_cpu_s_per_gib_above_idle": (holders_cpu - idle * run.seconds) / gib_lost,
            "peak_rss_mib": run.peak_rss_mib, "placement_moved": moved,
            "gas": gas, "gas_per_shard": total / len(shards), "gas_total": total}
