"""Shard format v1 (encode, then encrypt every shard) against v2 (encrypt the k data
shards, then encode), measured in one run on one devnet.

The v1 client is the parent commit's ``shardkey`` package (``git archive`` of
:data:`V1_REV`), run as a subprocess with that tree first on ``sys.path``; holders and
the KOS do not depend on the format, so both clients use the same devnet. Runs
alternate v1, v2, v1, v2 so that drift in machine load hits both alike; each figure is
the median. CPU seconds: the client's own (``wait4`` rusage, user + system) and every
holder's and KOS's from ``/proc/<pid>/stat`` before and after. AES bytes: the bytes
AES-GCM processes per GiB stored, from the format (v1: every shard, ``(k + p) / k``
of the padded file; v2: the ``k`` data shards only).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

V1_REV = "b79bacc"  # main just before the format change: the last shard format v1 client
GiB = 1 << 30
K, P, SHARD_SIZE = 3, 2, 1 << 20  # the store defaults, passed explicitly to both clients
CODING = ("--data-shards", str(K), "--parity", str(P), "--shard-size", str(SHARD_SIZE))


def v1_tree(repo: Path, work: Path, rev: str = V1_REV) -> Path:
    """Unpack ``rev``'s ``shardkey`` package into ``work/format-v1``; return that folder."""
    target = work / "format-v1"
    if (target / "shardkey").is_dir():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as archive:
        subprocess.run(["git", "archive", rev, "shardkey"], cwd=repo, stdout=archive,  # noqa: S603,S607
                       check=True)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(target, filter="data")
    return target


def aes_bytes_per_gib(version: int, k: int, p: int, shard_size: int, length: int) -> float:
    """AES-GCM plaintext bytes per GiB of file stored (padding included)."""
    stripes = max(1, -(-length // (k * shard_size)))
    shards = stripes * (k if version == 2 else k + p)
    return shards * shard_size * GiB / max(length, 1)


def services_cpu(info: dict[str, Any], cpu: Any) -> float:
    """CPU seconds so far of every holder and KOS committee member of the devnet (``/proc``)."""
    total = 0.0
    for entry in [*info.get("holders", []), *info.get("kos_members", [])]:
        try:
            total += cpu(int(entry["pid"]))
        except (OSError, KeyError, ValueError):
            pass
    return total


def run_format(suite: Any, size: int, repeats: int = 2) -> dict[str, Any]:
    """Store and fetch ``size`` random bytes with v1 and v2 clients, alternating."""
    from bench import suite as s

    tree = v1_tree(s.REPO, suite.work)
    env_v1 = {"PYTHONPATH": str(tree)}
    src = suite.work / "format-in.bin"
    expected = s.random_file(src, size)
    runs: dict[int, dict[str, list[dict[str, float]]]] = {1: {"store": [], "fetch": []},
                                                         2: {"store": [], "fetch": []}}
    params = {"k": K, "p": P, "shard_size": SHARD_SIZE}
    baselines = []
    for _ in range(repeats):
        for version in (1, 2):
            env, cwd = (env_v1, tree) if version == 1 else ({}, s.REPO)
            baselines.append(s.baseline(size))
            before = services_cpu(suite.dev.info, s.process_cpu_seconds)
            store = s.run_measured(suite.dev.argv("store", str(src), "--policy", str(suite.open_policy),
                                                  *CODING, "--json"), env=env, cwd=cwd)
            store_services = services_cpu(suite.dev.info, s.process_cpu_seconds) - before
            if store.returncode != 0:
                raise RuntimeError(f"v{version} store exited {store.returncode}: {store.stderr[-2000:]}")
            stored = store.json()
            request = suite.dev.request(stored["dataset"])
            out = suite.work / "format-out.bin"
            before = services_cpu(suite.dev.info, s.process_cpu_seconds)
            fetch = s.run_measured(suite.dev.argv("fetch", str(request), "-o", str(out), "--json"),
                                   env=env, cwd=cwd)
            fetch_services = services_cpu(suite.dev.info, s.process_cpu_seconds) - before
            if fetch.returncode != 0 or s.file_sha256(out) != expected:
                raise RuntimeError(f"v{version} fetch failed or differs: {fetch.stderr[-2000:]}")
            out.unlink()
            for op, run, services in (("store", store, store_services), ("fetch", fetch, fetch_services)):
                runs[version][op].append({"seconds": run.seconds, "client_cpu_s": run.cpu_seconds,
                                          "services_cpu_s": services})
    src.unlink()
    base = statistics.median(baselines)
    result: dict[str, Any] = {"size": size, "repeats": repeats, "v1_rev": V1_REV, "baseline_MBps": base / 1e6,
                              "params": params}
    gib = size / GiB
    for version in (1, 2):
        for op in ("store", "fetch"):
            rows = runs[version][op]
            seconds = statistics.median(r["seconds"] for r in rows)
            result[f"v{version}_{op}"] = {
                "seconds": seconds, "MBps": size / seconds / 1e6, "ratio": size / seconds / base,
                "client_cpu_s_per_gib": statistics.median(r["client_cpu_s"] for r in rows) / gib,
                "services_cpu_s_per_gib": statistics.median(r["services_cpu_s"] for r in rows) / gib}
        result[f"v{version}_aes_bytes_per_gib"] = aes_bytes_per_gib(
            version, params["k"], params["p"], params["shard_size"], size)
    for op in ("store", "fetch"):
        result[f"{op}_speedup"] = result[f"v1_{op}"]["seconds"] / result[f"v2_{op}"]["seconds"]
    return result


def describe(result: dict[str, Any]) -> str:
    """One log line."""
    return json.dumps(result, default=str)
