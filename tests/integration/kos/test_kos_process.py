"""``python -m kos --config FILE``: committee members as real processes."""

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


def _config(world, tmp_path: Path, member: int = 0, **extra: object) -> Path:
    """Member ``member``'s settings file in ``tmp_path`` (its own account and HPKE keystore)."""
    tmp_path.mkdir(exist_ok=True)
    world.ensure_committee()
    deployment = tmp_path / "deployment.json"
    deployment.write_text(json.dumps(world.dev.deployment.to_json()))
    passphrase = os.urandom(12).hex()
    atomic_write_bytes(tmp_path / "passphrase", passphrase.encode())
    save_hpke_keystore(tmp_path / "kos.hpke.json", world.member_keys[member], passphrase)
    save_plain_account_key(tmp_path / "kos.key", world.members[member])
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


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=20)[1].decode()


def test_two_member_processes_serve_a_request_and_stop_cleanly_on_sigterm(world, tmp_path: Path) -> None:
    folders = [tmp_path / "member-1", tmp_path / "member-2"]
    configs = [_config(world, folder, member=i) for i, folder in enumerate(folders)]
    dataset = world.dataset()
    procs = [_start(config) for config in configs]
    stderr: list[str] = []
    try:
        for folder, proc in zip(folders, procs, strict=True):
            _wait((folder / "state" / "heartbeat.json").exists, 90, proc)
        request_id = world.request(dataset)
        world.approve(request_id)
        _wait(lambda: world.chain.retrievals.request(request_id).tokens_issued == 3, 90, procs[0])
        # The request leaves each member's pending set once its release is `confirmations` deep.
        seen_at = world.chain.client.block_number()

        def settled(folder: Path) -> bool:
            beat = json.loads((folder / "state" / "heartbeat.json").read_text())
            return beat["pending"] == 0 and beat["block"] > seen_at
        for folder, proc in zip(folders, procs, strict=True):
            _wait(lambda f=folder: settled(f), 90, proc)
    finally:
        stderr = [_stop(proc) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    for i, (folder, proc) in enumerate(zip(folders, procs, strict=True)):
        records = [json.loads(line) for line in stderr[i].splitlines()]
        assert any(r["msg"] == "shares released" and r["request"] == request_id for r in records)
        assert records[0]["msg"] == "KOS committee member started"
        assert records[0]["account"] == world.members[i].address
        assert records[-1]["msg"] == "KOS committee member stopped"
        beat = json.loads((folder / "state" / "heartbeat.json").read_text())
        assert beat["pending"] == 0 and beat["pid"] == proc.pid and beat["releases"] == 1
    world.assert_served(request_id, dataset)


def test_bad_settings_exit_2_with_one_line(world, tmp_path: Path) -> None:
    config = _config(world, tmp_path, colour="blue")
    proc = _start(config)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kos: error:") and "colour" in lines[0]


def test_a_single_key_kos_settings_file_exits_2_naming_the_line_to_delete(world, tmp_path: Path) -> None:
    for key, value in (("committee_member", True), ("replicas", []), ("takeover_after", 10)):
        config = _config(world, tmp_path / key, **{key: value})
        proc = _start(config)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 2
        (line,) = stderr.decode().strip().splitlines()
        assert line.startswith("kos: error:") and f"{key} is no longer a KOS setting" in line
        assert "delete the line" in line


def test_an_account_not_in_the_committee_refuses_to_start(world, tmp_path: Path) -> None:
    config = _config(world, tmp_path)
    outsider = Account.create()
    save_plain_account_key(tmp_path / "kos.key", outsider)
    proc = _start(config)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3  # chain identity (shardkey/service/exits.py)
    assert f"account {outsider.address} is not a member of committee epoch 1" in stderr.decode()
    assert "shardkey kos committee start" in stderr.decode()


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
        assert body["status"] == "ok" and body["account"] == world.members[0].address
        request_id = world.request(dataset)
        world.approve(request_id)

        _wait(lambda: world.released_by(request_id) == [world.members[0].address], 30, proc)
        # one share envelope per fragment holder
        metric = "shardkey_kos_envelopes_released_total 3.0"
        _wait(lambda: metric in httpx.get(f"{base}/metrics", timeout=5).text, 30, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        print(stderr.decode()[-3000:])  # shown when the test fails
    assert proc.returncode == 0
