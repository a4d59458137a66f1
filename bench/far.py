"""Far holders (``--only far``): every devnet holder behind a shaping proxy of its own.

One ``python -m bench.shaping_proxy`` process per holder (bench/shaping_proxy.py: a pipe of
``--far-mbit`` per direction, one-way delay RTT/2, bounded in flight), RTTs by region from
``--far-rtts`` (default 20, 50, 80, 120, 150 ms). Each holder's on-chain endpoint is pointed at
its proxy with ``shardkey holder update --config HOLDER.toml --endpoint URL`` (the holder's own
transaction, as an operator would move it), a file of ``--far-size`` MiB (default 1024;
256 with ``--quick``) is stored and fetched through them, and the endpoints are put back and
the proxies stopped afterwards, also on failure.

Achieved link throughput = bytes the proxies relayed during the command (their counters, both
directions) / time, against the aggregate cap (links x cap) and against the cap of the links
that carried bytes (a fetch reads the data shards only, so parity holders' links stay idle).
Time is the ``shards`` phase of the command's ``--json`` timings (the data phase) and, second,
the whole command from process start to exit.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

GiB = 1 << 30
MiB = 1 << 20


class Proxies:
    """One shaping proxy process per holder."""

    def __init__(self, work: Path, holders: list[dict[str, Any]], rtts: list[float], mbit: float):
        from bench.datapath import free_ports
        self.work = work
        self.holders = holders
        self.rtts = [rtts[i % len(rtts)] for i in range(len(holders))]
        self.mbit = mbit
        self.ports = free_ports(len(holders))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        repo = Path(__file__).resolve().parents[1]
        for i, (holder, port) in enumerate(zip(self.holders, self.ports, strict=True)):
            target = int(holder["endpoint"].rsplit(":", 1)[1])
            log = open(self.work / f"proxy-{i + 1}.log", "wb")
            self.procs.append(subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "bench.shaping_proxy", "--link",
                 f"{port}:127.0.0.1:{target}:{self.rtts[i]:g}", "--rate-mbit", f"{self.mbit:g}",
                 "--stats", str(self.stats_file(i))], cwd=repo, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True))
            log.close()
        from bench.datapath import wait_listening
        for port in self.ports:
            wait_listening(port, 30, self.procs)

    def stats_file(self, i: int) -> Path:
        return self.work / f"proxy-{i + 1}.json"

    def counters(self) -> list[tuple[int, int]]:
        """(up, down) bytes relayed so far, per holder (after the proxies' 0.2 s stats tick)."""
        time.sleep(0.5)
        out = []
        for i in range(len(self.holders)):
            try:
                link = next(iter(json.loads(self.stats_file(i).read_text()).values()))
                out.append((int(link["up_bytes"]), int(link["down_bytes"])))
            except (OSError, ValueError, StopIteration):
                out.append((0, 0))
        return out

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _point(dev: Any, holders: list[dict[str, Any]], endpoints: list[str]) -> None:
    """Each holder's ``shardkey holder update --endpoint`` (its own transaction), all at once."""
    def one(holder: dict[str, Any], endpoint: str) -> None:
        dev.run("holder", "update", "--config", holder["config"], "--endpoint", endpoint, timeout=900)

    with ThreadPoolExecutor(len(holders)) as pool:
        for future in [pool.submit(one, h, e) for h, e in zip(holders, endpoints, strict=True)]:
            future.result()


def _put_back(dev: Any, holders: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """The holders' own endpoints again; a failure is recorded beside the figures, not lost with them."""
    try:
        _point(dev, holders, [h["endpoint"] for h in holders])
        result["endpoints_restored"] = True
    except RuntimeError as exc:
        result["endpoints_restored"] = False
        result["restore_error"] = str(exc)[-1000:]
        from bench.suite import log
        log(f"far: could not put the holders' endpoints back: {exc}")


def _links(before: list[tuple[int, int]], after: list[tuple[int, int]], figures: dict[str, Any],
           rate: float) -> dict[str, Any]:
    moved = [(a[0] - b[0]) + (a[1] - b[1]) for a, b in zip(after, before, strict=True)]
    total = sum(moved)
    used = sum(1 for n in moved if n > MiB)
    data_s = figures["timings"].get("shards") or figures["seconds"]
    result = {"bytes_per_link": moved, "bytes": total, "links_used": used, "data_phase_s": data_s}
    for name, seconds in (("data_phase", data_s), ("command", figures["seconds"])):
        achieved = total / seconds
        result[name] = {"bytes_per_s": achieved, "Mbit_per_s": achieved * 8 / 1e6,
                        "of_aggregate_cap": achieved / (rate * len(moved)),
                        "of_used_links_cap": achieved / (rate * max(used, 1))}
    return result


def run_far(suite: Any, size: int, rtts: list[float], mbit: float) -> dict[str, Any]:
    from bench import suite as s
    from bench.datapath import Services, layout_bytes, measured, per_holder, warm_file
    dev = suite.dev
    holders = dev.info["holders"]
    rate = mbit * 1e6 / 8
    proxies = Proxies(suite.work, holders, rtts, mbit)
    src, expected = suite.source(size)
    result: dict[str, Any] = {"size": size, "label": s.size_label(size), "rtts_ms": proxies.rtts,
                              "cap_mbit_per_link": mbit, "links": len(holders),
                              "aggregate_cap_mbit": mbit * len(holders)}
    with ExitStack() as cleanup:
        cleanup.callback(proxies.stop)
        proxies.start()
        cleanup.callback(_put_back, dev, holders, result)  # also on failure
        _point(dev, holders, [f"http://127.0.0.1:{port}" for port in proxies.ports])
        services = Services.of(dev.info)
        services.measure_idle()
        warm_file(src)
        started = time.monotonic()
        before = proxies.counters()
        run, store = measured(dev, dev.argv("store", str(src), "--policy", str(suite.open_policy), "--json",
                                   *suite.shard_args()),
                              size, services)
        dataset = run.json()["dataset"]
        stored, served = layout_bytes(dev, dataset)
        per_holder(store, stored, services)
        store["links"] = _links(before, proxies.counters(), store, rate)
        request = int(dev.run("request", dataset, "--json").json()["request"])
        out = suite.work / "far-out.bin"
        before = proxies.counters()
        _, fetch = measured(dev, dev.argv("fetch", str(request), "-o", str(out), "--json"), size, services)
        per_holder(fetch, served, services)
        fetch["links"] = _links(before, proxies.counters(), fetch, rate)
        result.update(store=store, fetch=fetch, verified=s.file_sha256(out) == expected,
                      section_s=time.monotonic() - started)
        out.unlink()
    return result


def describe(r: dict[str, Any]) -> str:
    parts = []
    for op in ("store", "fetch"):
        f = r[op]
        link = f["links"]
        parts.append(f"{op} {f['seconds']:.1f} s (data phase {link['data_phase_s']:.1f} s): "
                     f"{link['data_phase']['Mbit_per_s']:.0f} Mbit/s = "
                     f"{link['data_phase']['of_aggregate_cap']:.0%} of {r['aggregate_cap_mbit']:g}")
    return "; ".join(parts)
