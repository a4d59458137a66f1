"""The threshold KOS committee under load, on devnets of its own (``--only committee``).

For each committee shape (3 members threshold 2, 5 members threshold 3): a devnet with
``--kos M --kos-threshold T``, a small dataset under an open policy, then the same burst as the
single-KOS section (bench/kosload.py: 100 requests mined in one block, a block a second) and:

- seconds until every request holds its tokens (``TokenIssued`` fires in the ``t_k``-th member's
  release), requests and released shares per second, the members' CPU (``/proc``);
- gas of every ``releaseShares`` of the burst (from its ``SharesReleased`` events): per member
  per request, split into releases below the threshold and the one that reaches it (which
  also issues the tokens), and all releases of a request summed;
- wall time of ``request`` + ``fetch`` of a 1 MiB file, against the same on a devnet whose
  committee is one member of threshold one (the baseline "single KOS"), measured in the same
  run (the ratio is the cost of a larger committee in latency).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

SHAPES = ((3, 2), (5, 3))
COUNT = 100
HOLDERS = 5
FETCH_SIZE = 1 << 20
FETCH_RUNS = 3


class CommitteeDevnet:
    """A bench devnet started with a committee of ``members`` (threshold ``threshold``; 1 of 1 is
    the baseline single KOS)."""

    def __init__(self, home: Path, members: int, threshold: int):
        from bench import suite as s
        self.dev = s.Devnet(home)
        self.members = members
        self.threshold = threshold

    def up(self) -> float:
        args = ["devnet", "up", "--holders", str(HOLDERS), "--kos", str(self.members),
                "--kos-threshold", str(self.threshold)]
        return float(self.dev.run(*args, timeout=600).seconds)

    def service_pids(self) -> list[int]:
        return self.dev.kos_pids()


def fetch_latency(suite: Any, dev: Any, label: str) -> dict[str, Any]:
    """Median wall time of ``request`` then ``fetch`` of a 1 MiB file (open policy)."""
    from bench import suite as s
    src = suite.work / f"fetch-{label}.bin"
    digest = s.random_file(src, FETCH_SIZE)
    _, stored = dev.store(src, suite.open_policy)
    times = []
    for i in range(FETCH_RUNS):
        started = time.perf_counter()
        rid = dev.request(stored["dataset"])
        out = suite.work / f"fetch-{label}-{i}.out"
        dev.fetch(rid, out)
        times.append(time.perf_counter() - started)
        if s.file_sha256(out) != digest:
            raise RuntimeError(f"{label}: fetched file differs from the stored one")
        out.unlink()
    src.unlink()
    return {"runs": FETCH_RUNS, "seconds_median": statistics.median(times), "seconds": times}


def release_gas(suite: Any, dev: Any, b: Any) -> dict[str, Any]:
    """Gas of each ``releaseShares`` in the burst, split by whether it reached the threshold."""
    chain = dev.chain()
    event = chain.committee.contract.events.SharesReleased
    logs = event().get_logs(from_block=b.mined_block)
    per_request: dict[int, list[tuple[int, int]]] = {}
    for entry in logs:
        rid = int(entry["args"]["requestId"])
        if rid in b.ids:
            gas = suite.gas_of("0x" + bytes(entry["transactionHash"]).hex(), dev)["gas"]
            per_request.setdefault(rid, []).append((int(entry["blockNumber"]) * 10**6
                                                    + int(entry["logIndex"]), gas))
    below: list[int] = []
    reaching: list[int] = []
    totals: list[int] = []
    threshold = chain.committee.threshold(chain.committee.current_epoch())
    for releases in per_request.values():
        ordered = [g for _, g in sorted(releases)]
        below += ordered[:threshold - 1] + ordered[threshold:]
        if len(ordered) >= threshold:
            reaching.append(ordered[threshold - 1])
        totals.append(sum(ordered))

    def mean(xs: list[int]) -> float:
        return statistics.fmean(xs) if xs else 0.0
    all_gas = below + reaching
    return {"releases": len(all_gas), "gas_per_member_per_request": mean(all_gas),
            "gas_release_below_threshold": mean(below), "gas_release_reaching_threshold": mean(reaching),
            "gas_per_request_all_members": mean(totals),
            "releases_per_request": len(all_gas) / len(per_request) if per_request else 0.0}


def run_committee(suite: Any) -> dict[str, Any]:
    """Every shape of :data:`SHAPES`, plus the fetch latency of the 1-of-1 committee (the single
    KOS) it is compared with."""
    from bench import suite as s
    from bench.kosload import BLOCK_TIME_S, burst, request_blocks
    results: dict[str, Any] = {"requests": COUNT, "holders": HOLDERS, "block_time_s": BLOCK_TIME_S}
    single = CommitteeDevnet(suite.work / "devnet-single-kos", 1, 1)
    try:
        single.up()
        results["single_kos_fetch"] = fetch_latency(suite, single.dev, "single")
    finally:
        single.dev.down()
    base = results["single_kos_fetch"]["seconds_median"]
    for members, threshold in SHAPES:
        cd = CommitteeDevnet(suite.work / f"devnet-committee-{members}", members, threshold)
        label = f"{members}_of_{threshold}"
        try:
            cd.up()
            fetch = fetch_latency(suite, cd.dev, label)
            fetch["ratio_to_single_kos"] = fetch["seconds_median"] / base
            src = suite.work / f"burst-{label}.bin"
            s.random_file(src, 4096)
            _, stored = cd.dev.store(src, suite.open_policy, "--shard-size", "4096")
            dataset_id = bytes.fromhex(stored["dataset"][2:])
            b = burst(suite, cd.dev, dataset_id, HOLDERS, COUNT, cd.service_pids())
            chain = cd.dev.chain()
            results[f"members_{members}_threshold_{threshold}"] = {
                "members": members, "threshold": threshold, "blocks": request_blocks(chain, b),
                "seconds": b.seconds, "all_tokens": b.settled_at is not None,
                "requests_per_s": COUNT / b.seconds, "tokens_per_s": COUNT * HOLDERS / b.seconds,
                "shares_released_per_s": COUNT * HOLDERS * threshold / b.seconds,
                "members_cpu_s": b.cpu_seconds, "gas": release_gas(suite, cd.dev, b), "fetch_1mib": fetch}
        finally:
            cd.dev.down()
    return results
