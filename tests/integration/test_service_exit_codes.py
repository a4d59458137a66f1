"""The service exit-code table (shardkey/service/exits.py) with real KOS member and holder processes.

The same mistake gives the same status in both services, through both entry points
(``python -m kos|holder_agent`` and ``shardkey kos|holder run``): 2 configuration,
3 chain identity, 4 listening port taken.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.devnet.anvil import free_port
from shardkey.keys import save_hpke_keystore, save_plain_account_key
from shardkey.service.exits import ServiceExit
from tests.support.devchain import DevChain

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "service passphrase"  # noqa: S105 - a test keystore's
SERVICES = ("kos", "holder")


@dataclass
class Setup:
    """A valid configuration of one service, ready to be broken by a test."""

    service: str
    folder: Path
    values: dict[str, object]

    @property
    def config(self) -> Path:
        return self.folder / f"{self.service}.toml"

    def write(self, **changes: object) -> Path:
        values = {**self.values, **changes}
        lines = [f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None]
        self.config.write_text("\n".join(lines) + "\n")
        return self.config


def _setup(dev: DevChain, service: str, folder: Path) -> Setup:
    folder.mkdir()
    (folder / "deployment.json").write_text(json.dumps(dev.deployment.to_json()))
    (folder / "passphrase").write_text(PASSPHRASE + "\n")
    values: dict[str, object] = {"deployment": "deployment.json", "account_key": "account.key",
                                 "hpke_keystore": "hpke.json", "passphrase_file": "passphrase",
                                 "confirmations": 1, "poll_interval": 0.1}
    if service == "kos":  # the one member of a 1-of-1 committee epoch, with its own HPKE key
        member, key = dev.account("member-1"), HpkePrivateKey.generate(os.urandom)
        assert dev.chain.committee is not None
        dev.chain.committee.start_epoch(dev.accounts["admin"], [member.address], [key.public_key_bytes()], 1)
        save_plain_account_key(folder / "account.key", member)
        save_hpke_keystore(folder / "hpke.json", key, PASSPHRASE)
        values["state_dir"] = "state"
    else:
        if "holder-1" not in dev.holder_keys:
            dev.register_holders(1)
        save_plain_account_key(folder / "account.key", dev.accounts["holder-1"])
        save_hpke_keystore(folder / "hpke.json", dev.holder_keys["holder-1"], PASSPHRASE)
        values.update(data_dir="store", listen_host="127.0.0.1", listen_port=free_port())
    return Setup(service, folder, values)


@pytest.fixture
def setups(devchain: DevChain, tmp_path: Path) -> dict[str, Setup]:
    return {s: _setup(devchain, s, tmp_path / s) for s in SERVICES}


def _run(setup: Setup, config: Path, cli: bool = False, timeout: float = 60) -> tuple[int, str]:
    """Run a service until it exits on its own; its status and stderr."""
    module = "kos" if setup.service == "kos" else "holder_agent"
    argv = ["-m", "shardkey", setup.service, "run"] if cli else ["-m", module]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDKEY_KOS_", "SHARDKEY_HOLDER_"))}
    proc = subprocess.run([sys.executable, *argv, "--config", str(config)], cwd=REPO, env=env,
                          capture_output=True, timeout=timeout, check=False)
    return proc.returncode, proc.stderr.decode()


def _missing_settings(s: Setup) -> Path:
    return s.folder / "nowhere.toml"


def _malformed_toml(s: Setup) -> Path:
    s.config.write_text("deployment = [\n")
    return s.config


def _unknown_key(s: Setup) -> Path:
    return s.write(colour="blue")


def _missing_keystore(s: Setup) -> Path:
    return s.write(hpke_keystore="missing.json")


def _wrong_passphrase(s: Setup) -> Path:
    (s.folder / "passphrase").write_text("not the passphrase\n")
    return s.write()


def _invalid_deployment(s: Setup) -> Path:
    (s.folder / "deployment.json").write_text(json.dumps({"chain_id": 31337}))
    return s.write()


CONFIG_ERRORS: dict[str, Callable[[Setup], Path]] = {
    "missing settings file": _missing_settings, "malformed TOML": _malformed_toml,
    "unknown key": _unknown_key, "missing keystore": _missing_keystore,
    "wrong passphrase": _wrong_passphrase, "invalid deployment file": _invalid_deployment,
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_same_configuration_error_gives_exit_2_in_both_services(setups: dict[str, Setup], case: str) -> None:
    results = {name: _run(s, CONFIG_ERRORS[case](s)) for name, s in setups.items()}
    for name, (code, stderr) in results.items():
        assert code == ServiceExit.CONFIG, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and ": error: " in lines[0], (name, stderr)
        assert PASSPHRASE not in stderr and "not the passphrase" not in stderr


def test_rpc_of_another_chain_gives_exit_3_in_both_services(setups: dict[str, Setup]) -> None:
    for name, s in setups.items():
        data = json.loads((s.folder / "deployment.json").read_text())
        (s.folder / "deployment.json").write_text(json.dumps({**data, "chain_id": 5}))
        code, stderr = _run(s, s.write())
        assert code == ServiceExit.IDENTITY, (name, stderr)
        assert "serves chain 31337" in stderr and "rpc_url" in stderr, stderr


def test_kos_not_a_committee_member_exits_3_and_says_what_to_run(setups: dict[str, Setup]) -> None:
    s = setups["kos"]
    outsider = Account.create()
    save_plain_account_key(s.folder / "account.key", outsider)
    for cli in (False, True):
        code, stderr = _run(s, s.write(), cli=cli)
        assert code == ServiceExit.IDENTITY, stderr
        assert f"account {outsider.address} is not a member of committee epoch 1" in stderr, stderr
        assert "shardkey kos committee start" in stderr


def test_kos_settings_of_the_removed_single_key_kos_exit_2_naming_the_line(setups: dict[str, Setup]) -> None:
    s = setups["kos"]
    for cli in (False, True):
        code, stderr = _run(s, s.write(committee_member=True), cli=cli)
        assert code == ServiceExit.CONFIG, stderr
        (line,) = stderr.strip().splitlines()
        assert "committee_member is no longer a KOS setting" in line and "delete the line" in line


def test_unregistered_holder_exits_3_and_says_what_to_run(setups: dict[str, Setup]) -> None:
    s = setups["holder"]
    save_plain_account_key(s.folder / "account.key", Account.create())
    for cli in (False, True):
        code, stderr = _run(s, s.write(), cli=cli)
        assert code == ServiceExit.IDENTITY, stderr
        assert "not registered" in stderr and "shardkey holder register" in stderr


@pytest.fixture
def taken_port() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.mark.parametrize("cli", [False, True], ids=["python -m holder_agent", "shardkey holder run"])
def test_holder_on_a_port_in_use_exits_4(setups: dict[str, Setup], taken_port: int, cli: bool) -> None:
    s = setups["holder"]
    code, stderr = _run(s, s.write(listen_port=taken_port), cli=cli)
    assert code == ServiceExit.BIND, stderr
    assert f"127.0.0.1:{taken_port}" in stderr and "listen_port" in stderr
