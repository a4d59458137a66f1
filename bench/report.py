"""Render bench results as a markdown table (with the previous design's figures beside them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report_perf import datapath_rows, far_rows, tahoe_rows

TARGETS = {
    ("store", "128 MiB"): 0.10, ("fetch", "128 MiB"): 0.10,
    ("store", "1 GiB"): 0.15, ("fetch", "1 GiB"): 0.15,
}


def _repair_rows(rep: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Keyless repair of one failed holder's shards (bench/repair.py)."""
    if not rep:
        return []
    gib, par = 1 << 30, rep["params"]
    what = (f"{rep['shards_lost']} shards = {rep['lost_bytes'] >> 20} MiB of a {rep['size'] >> 20} MiB file, "
            f"{rep['holders']} holders, k={par['k']} p={par['p']}")
    rows = [(f"repair of a failed holder's shards ({what}): x baseline",
             f"{rep['ratio']:.3f} ({rep['seconds']:.1f} s, {rep['MBps']:.1f} MB/s of lost shards; baseline "
             f"{rep['baseline_MBps']:.0f} MB/s){'' if rep['placement_moved'] else ' NOT MOVED'}", ""),
            ("repair: bytes read / written per GiB lost (GiB)",
             f"{rep['read_per_gib_lost'] / gib:.2f} / {rep['written_per_gib_lost'] / gib:.2f}",
             "read = k x written"),
            ("repair: CPU s per GiB lost (repair process + holders)",
             f"{rep['repairer_cpu_s_per_gib']:.1f} + {rep['holders_cpu_s_per_gib']:.1f} (holders above their "
             f"idle {rep['holders_idle_cpu_s_per_s']:.2f} CPU s/s: "
             f"{rep['holders_cpu_s_per_gib_above_idle']:.1f})", "")]
    for name, step in rep["gas"].items():
        rows.append((f"gas repair: {name} (each shard)",
                     f"{step['gas_min']:,}-{step['gas_max']:,} x {step['txs']} "
                     f"(total {step['gas_total']:,})", ""))
    rows.append(("gas per repaired shard (assignShard + confirmShardPlacement)",
                 f"{rep['gas_per_shard']:,.0f} (all {rep['shards_lost']} shards: {rep['gas_total']:,})", ""))
    return rows


def _rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, target) rows; the metric names are the join key with the old run."""
    rows: list[tuple[str, str, str]] = []
    if "devnet_up_5" in r:
        rows.append(("devnet up, 5 holders (s)", f"{r['devnet_up_5']['seconds']:.1f}", "a few s"))
    for t in r.get("throughput", []):
        target = TARGETS.get((t["op"], t["label"]))
        rows.append((f"{t['op']} {t['label']}: x baseline",
                     f"{t['ratio']:.3f} ({t['seconds']:.1f} s, {t['MBps']:.0f} MB/s; baseline "
                     f"{t['baseline_MBps']:.0f} MB/s){'' if t['verified'] else ' NOT VERIFIED'}",
                     f">= {target:.2f}" if target else ""))
        rows.append((f"{t['op']} {t['label']}: peak RSS (MiB)", f"{t['peak_rss_mib']:.0f}",
                     "<= 200, flat"))
    rows += datapath_rows(r.get("datapath"))
    rows += tahoe_rows(r.get("tahoe"), r.get("datapath"))
    rows += far_rows(r.get("far"))
    small = r.get("small")
    if small:
        for op in ("store", "fetch"):
            s = small[op]
            phases = ", ".join(f"{k} {v:.2f}" for k, v in s["phases_median_s"].items())
            rows.append((f"1 MiB {op}, median of {small['runs']} (s)",
                         f"{s['median_s']:.2f} (in-process phases: {phases})", "< 1.0"))
        rows.append(("CLI process start (`shardkey --help`, s)", f"{small['process_start_s']:.2f}", ""))
    gas = r.get("gas")
    if gas:
        for g in gas["registration"]:
            reg = g["register"]
            rows.append((f"gas registerDataset, {g['shards']} shards",
                         f"{reg['gas']:,} (calldata {reg['calldata_bytes']:,} B = {reg['calldata_gas']:,} "
                         f"gas; rest {reg['gas'] - reg['calldata_gas']:,})", "storage constant"))
            rows.append((f"gas confirmCustody each, {g['shards']} shards",
                         f"{g['custody_gas_each']:,} x {g['custody_txs']}", ""))
        for name, step in gas["retrieval"].items():
            rows.append((f"gas {name}", f"{step['gas_each']:,} x {step['txs']}", ""))
    redeal = r.get("redeal")
    if redeal:
        for name, step in redeal["steps"].items():
            rows.append((f"gas re-deal: {name}", f"{step['gas_each']:,} x {step['txs']}", ""))
        rows.append((f"gas per re-deal (one `shardkey redeal` to {redeal['holders']} holders, every tx "
                     f"above; {redeal['seconds']:.1f} s)", f"{redeal['gas_total']:,}", ""))
    rows += _repair_rows(r.get("repair"))
    kos = r.get("kos")
    if kos:
        rows.append(("KOS (the devnet committee): 100 requests in one block -> all tokens (s)",
                     f"{kos['seconds']:.2f} ({kos['tokens_per_s']:.0f} tokens/s; "
                     f"requests in {kos['blocks']} block(s)"
                     + (f", then a block every {kos['block_time_s']} s)" if "block_time_s" in kos else ")")
                     + ("" if kos["all_tokens"] else " INCOMPLETE"), "< 10"))
    rows += _committee_rows(r.get("committee"))
    scale = r.get("scale")
    if scale:
        rows.append((f"{scale['shards']:,}-shard dataset: store / fetch / audit verify (s)",
                     f"{scale['store_s']:.1f} / {scale['fetch_s']:.1f} / {scale['audit_s']:.1f}; restored "
                     f"{scale['restored']}, audit ok {scale['audit_ok']}", "correct"))
    many = r.get("devnet_up_many")
    if many:
        rows.append((f"devnet up, {many['holders']} holders (s)", f"{many['seconds']:.1f}", "< 60"))
    for name, err in r.get("failures", {}).items():
        rows.append((f"section {name}", "FAILED: " + err.splitlines()[-1][:200] if err else "FAILED", ""))
    return rows


def _committee_rows(c: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    if not c:
        return []
    rows = []
    single = c.get("single_kos_fetch")
    for shape in (v for k, v in sorted(c.items()) if k.startswith("members_")):
        name = f"committee {shape['members']} members, threshold {shape['threshold']}"
        rows.append((f"{name}: 100 requests in one block -> all tokens (s)",
                     f"{shape['seconds']:.2f} ({shape['tokens_per_s']:.0f} tokens/s, "
                     f"{shape['shares_released_per_s']:.0f} shares/s; requests in "
                     f"{shape['blocks']} block(s), then a block every {c['block_time_s']} s)"
                     + ("" if shape["all_tokens"] else " INCOMPLETE"),
                     "< 10"))
        gas = shape["gas"]
        rows.append((f"{name}: gas per member per request (releaseShares, {c['holders']} holders)",
                     f"{gas['gas_per_member_per_request']:,.0f} (below threshold "
                     f"{gas['gas_release_below_threshold']:,.0f}, the one reaching it "
                     f"{gas['gas_release_reaching_threshold']:,.0f}); per request, all members "
                     f"{gas['gas_per_request_all_members']:,.0f}", ""))
        fetch = shape["fetch_1mib"]
        rows.append((f"{name}: request + fetch of 1 MiB (s, median of {fetch['runs']})",
                     f"{fetch['seconds_median']:.2f} ({fetch['ratio_to_single_kos']:.2f}x the "
                     f"1-of-1 committee's "
                     f"{single['seconds_median']:.2f})" if single else f"{fetch['seconds_median']:.2f}", ""))
    return rows


def write_markdown(results: dict[str, Any], path: Path, before_path: Path | None = None) -> None:
    before: dict[str, str] = {}
    before_label = ""
    if before_path is not None and before_path.exists():
        old = json.loads(before_path.read_text())
        before = {m: v for m, v, _ in _rows(old)}
        before_label = old.get("label", old.get("machine", {}).get("git", "before"))
    m = results["machine"]
    lines = [
        "# ShardKey benchmark results",
        "",
        "Command: " + ", then ".join(f"`{c}`" for c in results.get("commands", [results["command"]]))
        + " (from the repository root; `make bench` runs `python -m bench`).",
        f"Machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, {m['platform']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}; "
        f"commit {m['git']}; {m['date']}.",
        "Throughput ratios divide end-to-end bytes/s (process start to exit, chain transactions "
        "included) by single-core AES-256-GCM + SHA-256 over the same bytes, measured just before.",
        "",
    ]
    header = "| metric | this run | target |" + (f" {before_label} |" if before else "")
    lines += [header, "|---|---|---|" + ("---|" if before else "")]
    for metric, value, target in _rows(results):
        row = f"| {metric} | {value} | {target} |"
        if before:
            row += f" {before.get(metric, '')} |"
        lines.append(row)
    if results.get("suite_seconds"):
        lines += ["", f"Suite wall time: {results['suite_seconds']:.0f} s."]
    lines.append("")
    path.write_text("\n".join(lines))
