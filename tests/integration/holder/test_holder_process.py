"""``python -m holder_agent --config FILE`` as the devnet starts it: health, SIGTERM -> exit 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shardkey.devnet.anvil import free_port
from shardkey.keys import save_hpke_keystore, save_plain_account_key

REPO = Path(__file__).resolve().parents[3]


def _write_config(world, tmp: Path, port: int, **extra: object) -> Path:
    deployment = tmp / "deployment.json"
    deployment.write_text(json.dumps(world.dev.deployment.to_json()))
    save_plain_account_key(tmp / "holder.key", world.holders[0])
    save_hpke_keystore(tmp / "hpke.json", world.dev.holder_keys["holder-1"], "secret passphrase")
    (tmp / "passphrase").write_text("secret passphrase\n")
    values = {"deployment": "deployment.json", "account_key": "holder.key", "hpke_keystore": "hpke.json",
              "passphrase_file": "passphrase", "data_dir": "store", "listen_host": "127.0.0.1",
              "listen_port": port, "confirmations": 1, "poll_interval": 0.1, "max_body_bytes": 1024,
              **extra}
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    config = tmp / "holder.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _start(config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDKEY_HOLDER_")}
    return subprocess.Popen([sys.executable, "-m", "holder_agent", "--config", str(config)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_runs_serves_health_and_stops_on_sigterm(world, tmp_path) -> None:
    port = free_port()
    proc = _start(_write_config(world, tmp_path, port))
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:  # 503 until the first poll
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1.0)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        # (stderr is read once the agent is stopped, below: reading it now would wait for ever)
        assert health is not None and health.status_code == 200, health.text if health else "no answer"
        assert health.json()["address"] == world.me
        # signed requests through a real server: raw path and query as the client signed them
        base = f"http://127.0.0.1:{port}"
        path = f"/v1/datasets/0x{'cd' * 32}/shards/7"
        put = httpx.put(base + path, content=b"shard bytes",
                        headers=world.headers(world.owner, "PUT", path, b"shard bytes"))
        assert put.status_code == 201, put.text
        query = path + "?request=4242"
        get = httpx.get(base + query, headers=world.headers(world.requester, "GET", query))
        assert get.status_code == 404 and get.json()["error"] == "unknown_request"
        too_big = httpx.put(base + path, content=b"x" * 2048,
                            headers=world.headers(world.owner, "PUT", path, b"x" * 2048))
        assert too_big.status_code == 413
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "stopped" for entry in lines)
    assert "secret passphrase" not in stderr.decode()


def test_bad_settings_exit_2_with_one_line(world, tmp_path) -> None:
    config = _write_config(world, tmp_path, free_port(), unknown_key=1)
    proc = _start(config)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert stderr.decode().strip().count("\n") == 0 and "unknown_key" in stderr.decode()
