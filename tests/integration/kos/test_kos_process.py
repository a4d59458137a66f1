"""``python -m kos --config FILE`` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eth_account import Account

from shardkey.fsutil import atomic_write_bytes
from shardkey.keys import save_hpke_keystore, save_plain_account_key

REPO = Path(__file__).resolve().parents[3]


def _config(world, tmp_path: Path, **extra: object) -> Path:
    deployment = tmp_path / "deployment.json"
    deployment.write_text(json.dumps(world.dev.deployment.to_json()))
    passphrase = os.urandom(12).hex()
    atomic_write_bytes(tmp_path / "passphrase", passphrase.encode())
    save_hpke_keystore(tmp_path / "kos.hpke.json", world.dev.kos_key, passphrase)
    save_plain_account_key(tmp_path / "kos.key", world.dev.accounts["kos"])
    values = {"deployment": "deployment.json", "account_key": "kos.key",
              "hpke_keystore": "kos.hpke.json", "passphrase_file": "passphrase",
              "state_dir": "state", "poll_interval": 0.1, "confirmations": 1, **extra}
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    config = tmp_path / "kos.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _start(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "kos", "--config", str(config)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait(check, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_process_issues_tokens_and_stops_cleanly_on_sigterm(world, tmp_path: Path) -> None:
    config = _config(world, tmp_path)
    dataset = world.dataset()
    proc = _start(config)
    try:
        _wait((tmp_path / "state" / "heartbeat.json").exists, 30, proc)
        request_id = world.request(dataset)
        world.approve(request_id)
        _wait(lambda: world.chain.retrievals.request(request_id).tokens_issued == 3, 30, proc)
        # The request leaves the pending set once its tokens are `confirmations` deep.
        heartbeat = tmp_path / "state" / "heartbeat.json"
        seen_at = world.chain.client.block_number()

        def settled() -> bool:
            beat = json.loads(heartbeat.read_text())
            return beat["pending"] == 0 and beat["block"] > seen_at
        _wait(settled, 30, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0
    records = [json.loads(line) for line in stderr.decode().splitlines()]
    assert any(r["msg"] == "tokens issued" and r["request"] == request_id for r in records)
    assert records[-1]["msg"] == "KOS replica stopped"
    world.assert_tokens_open(request_id, dataset)
    beat = json.loads((tmp_path / "state" / "heartbeat.json").read_text())
    assert beat["pending"] == 0 and beat["pid"] == proc.pid


def test_bad_settings_exit_2_with_one_line(world, tmp_path: Path) -> None:
    config = _config(world, tmp_path, colour="blue")
    proc = _start(config)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kos: error:") and "colour" in lines[0]


def test_replica_without_kos_role_refuses_to_start(world, tmp_path: Path) -> None:
    config = _config(world, tmp_path)
    save_plain_account_key(tmp_path / "kos.key", Account.create())
    proc = _start(config)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3  # chain identity (shardkey/service/exits.py)
    assert "KOS_ROLE" in stderr.decode()


def test_metrics_port_serves_health_and_metrics(world, tmp_path: Path) -> None:
    import httpx

    from shardkey.devnet.anvil import free_port

    port = free_port()
    config = _config(world, tmp_path, metrics_port=port)
    dataset = world.dataset()
    proc = _start(config)
    base = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        _wait(answers, 30, proc)
        _wait((tmp_path / "state" / "heartbeat.json").exists, 30, proc)  # it polls
        body = httpx.get(f"{base}/health", timeout=5).json()
        assert body["status"] == "ok" and body["account"] == world.dev.accounts["kos"].address
        request_id = world.request(dataset)
        world.approve(request_id)

        _wait(lambda: world.chain.retrievals.request(request_id).tokens_issued == 3, 30, proc)
        _wait(lambda: "shardkey_kos_tokens_issued_total 3.0" in httpx.get(f"{base}/metrics", timeout=5).text,
              30, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        print(stderr.decode()[-3000:])  # shown when the test fails
    assert proc.returncode == 0
