"""Tahoe-LAFS as the peer (``--only tahoe``; ``--no-tahoe`` skips it).

tahoe-lafs (:data:`VERSION`, from PyPI) is installed in a virtualenv of its own under the bench
cache folder (``--cache``, reused when present). A grid of the same shape as the devnet runs on
loopback, on free ports: an introducer, 5 storage nodes and a client node with
``shares.needed = 3``, ``shares.total = 5``, ``shares.happy = 5`` (k = 3 of 5, as ShardKey's
k = 3, p = 2). ``tahoe put`` and ``tahoe get`` of the same files the datapath section stored
(read once just before, so warm, like its warm variant) are timed from process start to exit,
and the nodes' CPU is read from ``/proc``. Every node is stopped (its stdin closed, then
SIGTERM to its process group, SIGKILL if it lingers) and the grid folder removed at the end,
also on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

VERSION = "1.20.0"
SHARES = ("--shares-needed=3", "--shares-happy=5", "--shares-total=5")
STORAGE_NODES = 5
GiB = 1 << 30


def venv(cache: Path, log: Any) -> Path:
    """The ``tahoe`` executable of the cached virtualenv, installed on first use."""
    home = cache / f"tahoe-lafs-{VERSION}"
    tahoe = home / "bin" / "tahoe"
    if (home / ".installed").exists() and tahoe.exists():
        return tahoe
    log(f"installing tahoe-lafs {VERSION} into {home} (PyPI; a minute or two)")
    subprocess.run(["python3.11", "-m", "venv", "--clear", str(home)], check=True)  # noqa: S603,S607
    pip = subprocess.run([str(home / "bin" / "pip"), "install", "--quiet", f"tahoe-lafs=={VERSION}"],  # noqa: S603
                         capture_output=True, text=True, check=False)
    if pip.returncode != 0:
        raise RuntimeError(f"pip install tahoe-lafs=={VERSION} into {home} exited {pip.returncode}: "
                           f"{pip.stderr[-2000:]}")
    (home / ".installed").write_text(VERSION + "\n")
    return tahoe


class Grid:
    """An introducer, storage nodes and one client node, each a ``tahoe run`` process."""

    def __init__(self, tahoe: Path, root: Path, ports: list[int]):
        self.tahoe = tahoe
        self.root = root
        self.ports = ports
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[bytes]] = []
        self.web = f"http://127.0.0.1:{ports[-1]}"

    def _tahoe(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.tahoe), *args], capture_output=True, text=True,  # noqa: S603
                              check=True, timeout=120)

    def _start(self, name: str) -> None:
        log = open(self.root / f"{name}.log", "wb")
        self.logs.append(log)
        # stdin is a pipe held open: `tahoe run` exits when it closes, so a dying bench leaves no node
        self.procs[name] = subprocess.Popen([str(self.tahoe), "run", str(self.root / name)],  # noqa: S603
                                            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def up(self, timeout: float = 600.0) -> float:
        started = time.monotonic()
        listen = "tcp:{0}:interface=127.0.0.1"
        intro = self.ports[0]
        self._tahoe("create-introducer", "--listen=tcp", f"--port={listen.format(intro)}",
                    f"--location=tcp:127.0.0.1:{intro}", str(self.root / "introducer"))
        self._start("introducer")
        furl_file = self.root / "introducer" / "private" / "introducer.furl"
        furl = self._wait(lambda: furl_file.read_text().strip() if furl_file.exists() else None, timeout,
                          "the introducer's furl")
        for i, port in enumerate(self.ports[1:1 + STORAGE_NODES]):
            name = f"storage-{i + 1}"
            self._tahoe("create-node", f"--nickname={name}", "--listen=tcp", f"--port={listen.format(port)}",
                        f"--location=tcp:127.0.0.1:{port}", "--webport=none", f"--introducer={furl}",
                        *SHARES, str(self.root / name))
            self._start(name)
        self._tahoe("create-client", "--nickname=client", f"--introducer={furl}",
                    f"--webport={listen.format(self.ports[-1])}", *SHARES, str(self.root / "client"))
        self._start("client")
        self._wait(lambda: self.connected() >= STORAGE_NODES or None, timeout,
                   f"the client node connected to {STORAGE_NODES} storage nodes")
        return time.monotonic() - started

    def connected(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.web}/?t=json", timeout=5) as reply:  # noqa: S310 - loopback
                servers = json.load(reply).get("servers", [])
        except (OSError, ValueError):
            return 0
        return sum(1 for s in servers if s.get("connection_status") == "connected")

    def _wait(self, probe: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"tahoe node {name} exited {proc.returncode} while waiting for "
                                       f"{what}; see {self.root / (name + '.log')}")
            value = probe()
            if value:
                return value
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def argv(self, *args: str) -> list[str]:
        return [str(self.tahoe), "-d", str(self.root / "client"), *args]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.stdin:
                proc.stdin.close()
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        for log in self.logs:
            log.close()


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    from bench.suite import process_cpu_seconds
    return {name: process_cpu_seconds(pid) for name, pid in pids.items()}


def run_tahoe(suite: Any, sizes: list[int]) -> dict[str, Any]:
    """``tahoe put`` / ``tahoe get`` of the datapath section's files (the same bytes)."""
    import shutil

    from bench import suite as s
    from bench.datapath import free_ports, warm_file

    tahoe = venv(suite.args.cache, s.log)
    root = suite.work / "tahoe"
    root.mkdir(parents=True, exist_ok=True)
    grid = Grid(tahoe, root, free_ports(STORAGE_NODES + 2))
    rows = []
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, root, True)
        cleanup.callback(grid.stop)
        grid_seconds = grid.up()
        s.log(f"tahoe grid up ({STORAGE_NODES} storage nodes, 3-of-5): {grid_seconds:.1f} s")
        for size in sizes:
            src, expected = suite.source(size)
            warm_file(src)
            before = _cpu(grid.pids())
            put = s.run_measured(grid.argv("put", str(src)), timeout=3600)
            put_cpu = _diff(_cpu(grid.pids()), before)
            if put.returncode != 0:
                raise RuntimeError(f"tahoe put exited {put.returncode}: {put.stderr[-2000:]}")
            cap = put.stdout.strip().splitlines()[-1]
            out = suite.work / f"tahoe-out-{size}.bin"
            before = _cpu(grid.pids())
            get = s.run_measured(grid.argv("get", cap, str(out)), timeout=3600)
            get_cpu = _diff(_cpu(grid.pids()), before)
            if get.returncode != 0 or s.file_sha256(out) != expected:
                raise RuntimeError(f"tahoe get failed or restored other bytes: {get.stderr[-2000:]}")
            out.unlink()
            for op, run, cpu in (("put", put, put_cpu), ("get", get, get_cpu)):
                rows.append({"op": op, "size": size, "label": s.size_label(size), "seconds": run.seconds,
                             "cli_cpu_s": run.cpu_seconds, "client_node_cpu_s": cpu["client"],
                             "storage_nodes_cpu_s": sum(v for k, v in cpu.items() if k.startswith("storage")),
                             "cpu_s_per_gib": (run.cpu_seconds + sum(cpu.values())) / (size / GiB)})
                s.log(f"tahoe {op} {s.size_label(size)}: {run.seconds:.1f} s, "
                      f"grid CPU {sum(cpu.values()):.1f} s")
    return {"version": VERSION, "shape": "3-of-5, happy 5", "storage_nodes": STORAGE_NODES,
            "grid_up_s": grid_seconds, "python": sys.version.split()[0], "rows": rows}


def _diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}
