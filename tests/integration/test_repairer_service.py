"""The repair service's start-up and lifecycle commands against anvil with the real contracts.

Bad settings exit 2 naming the key; an account without REPAIRER_ROLE exits 3 naming the
command that grants it (``shardkey repairer role grant``, run here and then the service
starts: ``/health`` and ``/metrics`` answer, SIGTERM stops it with 0); a taken metrics port
exits 4; ``repairer init`` writes a config the service loads and prints the address to grant.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shardkey.devnet.anvil import free_port
from shardkey.keys import save_plain_account_key
from shardkey.service.exits import ServiceExit
from tests.support.devchain import DevChain

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHARDKEY_")}


def _shardkey(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shardkey", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env or _env(), check=False)


def _write(folder: Path, **values: object) -> Path:
    config = folder / "repairer.toml"
    base: dict[str, object] = {"deployment": "deployment.json", "account_key": "account.key",
                               "state_dir": "state", "confirmations": 1, "poll_interval": 0.1}
    lines = [f"{k} = {json.dumps(v)}" for k, v in {**base, **values}.items() if v is not None]
    config.write_text("\n".join(lines) + "\n")
    return config


def _run(config: Path, cli: bool = False) -> tuple[int, str]:
    argv = ["-m", "shardkey", "repairer", "run"] if cli else ["-m", "repairer"]
    proc = subprocess.run([sys.executable, *argv, "--config", str(config)], cwd=REPO, env=_env(),
                          capture_output=True, timeout=60, check=False)
    return proc.returncode, proc.stderr.decode()


@pytest.fixture
def folder(devchain: DevChain, tmp_path: Path) -> Path:
    devchain.deployment.save(tmp_path / "deployment.json")
    save_plain_account_key(tmp_path / "admin.key", devchain.accounts["admin"])
    save_plain_account_key(tmp_path / "account.key", devchain.account("repair-service"))
    return tmp_path


BAD_SETTINGS = {
    "repair_margin": (-1, "repair_margin"), "scan_interval": (0, "scan_interval"),
    "poll_interval": ("fast", "poll_interval"), "same_region": ("maybe", "same_region"),
    "metrics_port": (70000, "metrics_port"), "colour": ("blue", "colour"),
    "confirmations": (1000, "confirmations"),
}


@pytest.mark.parametrize("key", list(BAD_SETTINGS))
def test_bad_settings_exit_2_naming_the_key(folder: Path, key: str) -> None:
    value, named = BAD_SETTINGS[key]
    code, stderr = _run(_write(folder, **{key: value}))
    assert code == ServiceExit.CONFIG, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("repairer: error: ") and named in lines[0], stderr


def test_missing_account_key_exits_2(folder: Path) -> None:
    code, stderr = _run(_write(folder, account_key="nowhere.key"))
    assert code == ServiceExit.CONFIG and "account_key" in stderr, stderr


def test_without_the_role_exit_3_then_granted_it_runs_until_sigterm(devchain: DevChain, folder: Path) -> None:
    address = devchain.accounts["repair-service"].address
    config = _write(folder, metrics_port=free_port())
    for cli in (False, True):
        code, stderr = _run(config, cli=cli)
        assert code == ServiceExit.IDENTITY, stderr
        assert "REPAIRER_ROLE" in stderr and "shardkey repairer role grant" in stderr, stderr
    assert not (folder / "state" / "cursor.json").exists()

    grant = _shardkey(folder, "repairer", "role", "grant", address, "--as", "admin.key",
                      "--deployment", "deployment.json")
    assert grant.returncode == 0 and "REPAIRER_ROLE granted" in grant.stdout, grant.stderr
    assert devchain.chain.holders.is_repairer(address)
    again = _shardkey(folder, "repairer", "role", "grant", address, "--as", "admin.key",
                      "--deployment", "deployment.json")
    assert again.returncode == 2 and "already holds REPAIRER_ROLE" in again.stderr

    port = _settings_port(config)
    log = folder / "repairer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "repairer", "--config", str(config)], cwd=REPO,
                                env=_env(), stdout=out, stderr=out)
    try:
        health = _wait_json(f"http://127.0.0.1:{port}/health")
        assert health["status"] == "ok" and health["account"] == address
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for name in ("shardkey_repairer_shards_repaired_total", "shardkey_repairer_repair_failures_total",
                     "shardkey_repairer_datasets_due", "shardkey_repairer_stripes_at_risk",
                     "shardkey_repairer_redeal_needed", "shardkey_repairer_last_pass_block"):
            assert f"\n{name} " in metrics, name
        status = json.loads(_shardkey(folder, "repairer", "status", "--config", str(config), "--json").stdout)
        assert status["repairer_role"] is True and status["heartbeat_ok"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == ServiceExit.OK, log.read_text()
    assert "repair service stopped" in log.read_text()

    revoke = _shardkey(folder, "repairer", "role", "revoke", address, "--as", "admin.key",
                       "--deployment", "deployment.json")
    assert revoke.returncode == 0, revoke.stderr
    assert not devchain.chain.holders.is_repairer(address)


def test_a_taken_metrics_port_exits_4(folder: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        code, stderr = _run(_write(folder, metrics_port=int(sock.getsockname()[1])))
    assert code == ServiceExit.BIND, stderr


def test_init_writes_a_config_and_prints_the_address_to_grant(devchain: DevChain, tmp_path: Path) -> None:
    devchain.deployment.save(tmp_path / "deployment.json")
    (tmp_path / "pass").write_text("a repairer passphrase\n")
    proc = _shardkey(tmp_path, "repairer", "init", "svc", "--deployment", "deployment.json",
                     "--passphrase-file", "pass", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "shardkey repairer role grant " + out["address"] in out["next"]
    assert (tmp_path / "svc" / "state").is_dir() and oct((tmp_path / "svc").stat().st_mode)[-3:] == "700"
    code, stderr = _run(Path(out["config"]))  # loads and unlocks; no role yet
    assert code == ServiceExit.IDENTITY and out["address"] in stderr, stderr
    twice = _shardkey(tmp_path, "repairer", "init", "svc", "--deployment", "deployment.json",
                      "--passphrase-file", "pass")
    assert twice.returncode == 2 and "already exists" in twice.stderr


def _settings_port(config: Path) -> int:
    import tomllib

    return int(tomllib.loads(config.read_text())["metrics_port"])


def _wait_json(url: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = httpx.get(url, timeout=2)
            if reply.status_code == 200:
                body: dict[str, object] = reply.json()
                return body
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not healthy after {timeout} s")
        time.sleep(0.2)
