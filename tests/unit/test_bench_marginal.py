"""The benchmark's CPU per GiB more: the slope between two sizes, and the fixed cost it leaves."""

from __future__ import annotations

from typing import Any

from bench.report_perf import marginal_rows

GiB = 1 << 30
MiB = 1 << 20


def _figures(size: int, client_fixed: float, client_per_gib: float,
             holder_fixed: float, holder_per_gib: float) -> dict[str, Any]:
    moved = size // 3  # what each holder received or served
    holder_cpu = holder_fixed + holder_per_gib * moved / GiB
    return {"cpu_s": client_fixed + client_per_gib * size / GiB,
            "holders": {name: {"bytes": moved, "above_idle_cpu_s_per_gib": holder_cpu / (moved / GiB)}
                        for name in ("holder-1", "holder-2", "holder-3")}}


def _run(size: int, cache: str) -> dict[str, Any]:
    return {"size": size, "label": f"{size // MiB} MiB", "cache": cache,
            "store": _figures(size, 0.4, 3.0, 0.015, 1.5), "fetch": _figures(size, 0.5, 2.0, 0.010, 0.9)}


def test_the_slope_and_the_fixed_cost_come_back_from_two_sizes() -> None:
    rows = {name: value for name, value, _ in marginal_rows(
        [_run(128 * MiB, "warm"), _run(1024 * MiB, "warm"), _run(128 * MiB, "cold")])}
    assert rows == {
        "datapath store 128 MiB -> 1024 MiB warm: client CPU s per GiB more (fixed per command)":
            "3.00 (+0.40 s)",
        "datapath store 128 MiB -> 1024 MiB warm: holder CPU s per GiB more received, above idle "
        "(max / median; fixed per command, median)": "1.50 / 1.50 (+15 ms); over 3 holders",
        "datapath fetch 128 MiB -> 1024 MiB warm: client CPU s per GiB more (fixed per command)":
            "2.00 (+0.50 s)",
        "datapath fetch 128 MiB -> 1024 MiB warm: holder CPU s per GiB more served, above idle "
        "(max / median; fixed per command, median)": "0.90 / 0.90 (+10 ms); over 3 holders",
    }  # one cold size alone gives no slope


def test_a_holder_that_moved_nothing_at_one_size_is_left_out() -> None:
    small, big = _run(128 * MiB, "warm"), _run(1024 * MiB, "warm")
    del small["fetch"]["holders"]["holder-3"]  # a parity holder of the small dataset: it served nothing
    rows = [value for name, value, _ in marginal_rows([small, big]) if "fetch" in name and "holder" in name]
    assert rows == ["0.90 / 0.90 (+10 ms); over 2 holders"]
