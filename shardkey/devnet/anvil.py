"""Run anvil (from the npm package in node_modules) for a devnet or a test session."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx

from shardkey.devnet.process import DevnetError, start_detached, wait_until
from shardkey.settings import DEVNET_CHAIN_ID

REPO_ROOT = Path(__file__).resolve().parents[2]


def anvil_binary() -> str:
    """The anvil executable: node_modules/.bin/anvil of this checkout, else PATH."""
    local = REPO_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if not found:
        raise DevnetError("anvil not found: run 'npm ci' in the ShardKey checkout")
    return found


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc_ready(url: str) -> bool:
    """Whether an RPC endpoint answers ``eth_chainId``."""
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                  "params": []}, timeout=1.0)
    return reply.status_code == 200 and "result" in reply.json()


KEPT_STATES = 512  # blocks whose state eth_call can still read (pinned reads are recent)


def start_anvil(log_path: Path, port: int | None = None, block_time: float | None = 1.0,
                chain_id: int = DEVNET_CHAIN_ID) -> tuple[int, str]:
    """Start anvil on loopback: automine plus interval mining (so confirmations advance);
    ``block_time=None`` mines only on transactions (deterministic block numbers for tests).

    Returns (pid, rpc_url).
    """
    port = port or free_port()
    argv = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
            "--accounts", "1", "--gas-limit", "60000000",
            # Keep recent states in memory only: by default anvil dumps every block's state
            # under ~/.foundry/anvil/tmp (gigabytes per hour of 0.2 s blocks, never removed).
            "--prune-history", str(KEPT_STATES)]
    if block_time is not None:
        argv += ["--block-time", str(block_time), "--mixed-mining"]
    pid = start_detached(argv, log_path)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: rpc_ready(url), 30, "anvil", pid=pid, log_path=log_path)
    return pid, url
