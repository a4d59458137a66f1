"""Table rows of the datapath, tahoe and far sections (issue 15's targets beside them)."""

from __future__ import annotations

from typing import Any

CLIENT_TARGET = {"store": 3.5, "fetch": 2.5}  # CPU s per GiB of file
HOLDER_TARGET = 1.7  # CPU s per GiB received or served, each holder
TAHOE_TARGET = {"128 MiB": 2.0, "1 GiB": 3.0}  # ShardKey faster than Tahoe-LAFS by at least
FAR_TARGET = 0.80  # of the aggregate link bandwidth
MiB = 1 << 20
GiB = 1 << 30


def datapath_rows(d: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    if not d:
        return []
    rows = [("datapath: page cache", f"cold runs: {d['cache_label']}; warm runs: the source read (store) / "
             "the shards written (fetch) just before", "say which")]
    for r in d["runs"]:
        name = f"{r['label']} {r['cache']}"
        for op in ("store", "fetch"):
            f = r[op]
            phases = f["timings"]
            shards = f" (shards phase {phases['shards']:.2f} s)" if "shards" in phases else ""
            extra = f"; request before it {r['request_s']:.2f} s" if op == "fetch" else ""
            if op == "store" and "shard_size" in r:
                extra = f"; {r['shard_size'] / MiB:g} MiB shards"
            rows += [
                (f"datapath {op} {name}: wall time (s)",
                 f"{f['seconds']:.2f}{shards}{extra}{'' if r['verified'] else ' NOT VERIFIED'}", ""),
                (f"datapath {op} {name}: client CPU s per GiB",
                 f"{f['cpu_s_per_gib']:.2f} ({f['cpu_s']:.2f} s)", f"<= {CLIENT_TARGET[op]}"),
                (f"datapath {op} {name}: holder CPU s per GiB {'received' if op == 'store' else 'served'}"
                 " (max / median; above idle)",
                 f"{f['holder_cpu_s_per_gib_max']:.2f} / {f['holder_cpu_s_per_gib_median']:.2f}; above idle "
                 f"{f['holder_above_idle_cpu_s_per_gib_max']:.2f} / "
                 f"{f['holder_above_idle_cpu_s_per_gib_median']:.2f}; over "
                 f"{len(f['holders'])} holders" + ("; holders serving nothing: "
                 + ", ".join(f"{v:.2f}" for v in f["idle_holders_cpu_s"].values()) + " CPU s"
                 if f["idle_holders_cpu_s"] else ""), f"<= {HOLDER_TARGET}"),
                (f"datapath {op} {name}: committee / anvil CPU (s)",
                 f"{f['committee_cpu_s']:.2f} / {f['anvil_cpu_s']:.2f}", ""),
                (f"datapath {op} {name}: client peak RSS (MiB)", f"{f['peak_rss_mib']:.0f}", "<= 200, flat"),
            ]
    return rows + marginal_rows(d["runs"])


def marginal_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """CPU per GiB as the slope between the smallest and the largest size of the run (same page
    cache variant), with the fixed cost it leaves (the intercept): a process's start-up and a
    store's chain work are paid once per command, whatever its size."""
    rows = []
    for cache in ("cold", "warm"):
        mine = sorted((r for r in runs if r["cache"] == cache), key=lambda r: r["size"])
        if len(mine) < 2 or mine[0]["size"] == mine[-1]["size"]:
            continue
        small, big = mine[0], mine[-1]
        span = f"{small['label']} -> {big['label']} {cache}"
        for op in ("store", "fetch"):
            slope, fixed = _line((small["size"], small[op]["cpu_s"]), (big["size"], big[op]["cpu_s"]))
            rows.append((f"datapath {op} {span}: client CPU s per GiB more (fixed per command)",
                         f"{slope:.2f} (+{fixed:.2f} s)", f"<= {CLIENT_TARGET[op]}"))
            lines = [_line(*points) for points in _holder_points(small[op], big[op])]
            if not lines:
                continue
            slopes = sorted(x for x, _ in lines)
            fixed_ms = sorted(1000 * y for _, y in lines)
            rows.append((f"datapath {op} {span}: holder CPU s per GiB more "
                         f"{'received' if op == 'store' else 'served'}, above idle (max / median; "
                         "fixed per command, median)",
                         f"{slopes[-1]:.2f} / {_median(slopes):.2f} (+{_median(fixed_ms):.0f} ms); over "
                         f"{len(lines)} holders", f"<= {HOLDER_TARGET}"))
    return rows


def _holder_points(small: dict[str, Any], big: dict[str, Any]) -> list[tuple[tuple[int, float], ...]]:
    """Per holder that moved bytes in both commands: (bytes, CPU above idle) of each."""
    def point(row: dict[str, Any]) -> tuple[int, float]:
        return row["bytes"], row["above_idle_cpu_s_per_gib"] * row["bytes"] / GiB
    return [(point(small["holders"][name]), point(row)) for name, row in big["holders"].items()
            if name in small["holders"] and small["holders"][name]["bytes"] < row["bytes"]]


def _line(a: tuple[int, float], b: tuple[int, float]) -> tuple[float, float]:
    """(slope in CPU s per GiB, intercept in CPU s) of the line through two (bytes, CPU s) points."""
    slope = (b[1] - a[1]) / ((b[0] - a[0]) / GiB)
    return slope, a[1] - slope * a[0] / GiB


def _median(values: list[float]) -> float:
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def tahoe_rows(t: dict[str, Any] | None, d: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    if not t:
        return []
    ours = {(r["label"], op): r[op] for r in (d or {}).get("runs", []) if r["cache"] == "warm"
            for op in ("store", "fetch")}
    request = {r["label"]: r["request_s"] for r in (d or {}).get("runs", []) if r["cache"] == "warm"}
    rows = [("Tahoe-LAFS peer", f"tahoe-lafs {t['version']}, {t['shape']}, {t['storage_nodes']} storage "
             f"nodes + introducer + client node on loopback; grid up in {t['grid_up_s']:.1f} s", "")]
    for row in t["rows"]:
        op = "store" if row["op"] == "put" else "fetch"
        mine = ours.get((row["label"], op))
        target = TAHOE_TARGET.get(row["label"])
        value = f"Tahoe {row['seconds']:.1f} s (CPU, CLI + nodes: {row['cpu_s_per_gib']:.1f} s per GiB)"
        if mine:
            value += f"; ShardKey (warm) {mine['seconds']:.1f} s: **{row['seconds'] / mine['seconds']:.2f}x**"
            if op == "fetch":
                both = mine["seconds"] + request[row["label"]]
                value += f" (with `shardkey request` before it: {row['seconds'] / both:.2f}x)"
        rows.append((f"tahoe {row['op']} vs shardkey {op} {row['label']}: Tahoe / ShardKey wall time",
                     value, f">= {target:g}x" if target else ""))
    return rows


def far_rows(f: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    if not f:
        return []
    rows = [("far holders: links", f"{f['links']} holders, one shaping proxy each, RTT "
             f"{', '.join(f'{x:g}' for x in f['rtts_ms'])} ms, {f['cap_mbit_per_link']:g} Mbit/s per link "
             f"each way (aggregate {f['aggregate_cap_mbit']:g} Mbit/s); {f['label']}"
             + ("" if f.get("endpoints_restored", True) else "; ENDPOINTS NOT PUT BACK"), "")]
    for op in ("store", "fetch"):
        x = f[op]
        link = x["links"]
        data, whole = link["data_phase"], link["command"]
        rows += [
            (f"far {op} {f['label']}: link throughput / aggregate cap (data phase)",
             f"{data['of_aggregate_cap']:.0%} ({data['Mbit_per_s']:.0f} Mbit/s over "
             f"{link['data_phase_s']:.1f} s; of the {link['links_used']} links that carried bytes: "
             f"{data['of_used_links_cap']:.0%})" + ("" if f["verified"] else " NOT VERIFIED"),
             f">= {FAR_TARGET:.0%}"),
            (f"far {op} {f['label']}: same over the whole command",
             f"{whole['of_aggregate_cap']:.0%} ({whole['Mbit_per_s']:.0f} Mbit/s over {x['seconds']:.1f} s; "
             f"client CPU {x['cpu_s_per_gib']:.2f} s/GiB, peak RSS {x['peak_rss_mib']:.0f} MiB)", ""),
        ]
    return rows
