"""The CLI against a real devnet: hostile input exits 2 naming the field, writes nothing and
sends no transaction; then a full store / request / approve / fetch, after which no secret
the run used appears in any log, config, devnet.json or CLI output, and every secret file
is 0600.

Runs last in this module (pytest keeps file order): the scan also covers the output of the
refused commands above.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from shardkey.chain.connection import ChainClient
from shardkey.chain.deployment import Deployment
from shardkey.keys import load_hpke_keystore

OUTPUTS: list[str] = []  # stdout + stderr of every command run here, for the secret scan

GOOD_POLICY = "requesters: [requester]\nthreshold: 3\n"
APPROVAL_POLICY = """\
requesters: [requester]
approvals:
  - {group: ops, members: [client-rep], required: 1}
threshold: 3
"""


def run(devnet: Any, *args: str, check: int | None = 0) -> Any:
    proc = devnet.run(*args, check=check)
    OUTPUTS.append(proc.stdout)
    OUTPUTS.append(proc.stderr)
    return proc


def rpc(devnet: Any) -> ChainClient:
    return ChainClient(Deployment.load(devnet.home / "deployment.json").rpc_url)


def nonces(devnet: Any) -> dict[str, int]:
    client = rpc(devnet)
    return {name: client.w3.eth.get_transaction_count(entry["address"])
            for name, entry in devnet.devnet["accounts"].items()}


SERVICE_STATE = ("cursor", "heartbeat", "pending", ".part")


def files(*roots: Path) -> set[Path]:
    """Every file under ``roots`` except logs and the services' own state (which change by design)."""
    return {p for root in roots for p in root.rglob("*")
            if p.is_file() and "logs" not in p.parts and not any(s in p.name for s in SERVICE_STATE)}


@pytest.fixture
def owner_keystore(devnet, tmp_path: Path) -> Path:
    """The devnet owner's key in a real eth-account keystore (passphrase 'right horse')."""
    key = bytes.fromhex(Path(devnet.devnet["accounts"]["owner"]["key_file"]).read_text().strip()
                        .removeprefix("0x"))
    path = tmp_path / "owner.keystore.json"
    path.write_text(json.dumps(Account.encrypt(key, "right horse battery staple", kdf="scrypt",
                                               iterations=2**14)))
    path.chmod(0o600)
    return path


BAD_POLICIES = {
    "malformed-yaml": ("requesters: [requester\nthreshold: 3\n", "policy.yaml"),
    "unknown-top-key": ("requesters: [requester]\nsurprise: 1\n", "surprise"),
    "unknown-nested-key": ("time:\n  not_before: 2030-01-01T00:00:00Z\n  extra: 1\n", "time.extra"),
    "bad-address": ("requesters: ['0x1234']\n", "requesters[0]"),
    "bad-member": ("approvals:\n  - {group: g, members: ['0xZZ'], required: 1}\n", "members[0]"),
    "unknown-account": ("requesters: [nobody-known]\n", "requesters[0]"),
    "not-a-mapping": ("- just\n- a list\n", "mapping"),
    "binary": ("\x00\x01\x02", "policy"),
}


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_bad_policy_file_exits_2_naming_the_field(devnet, tmp_path: Path, case: str) -> None:
    text, field = BAD_POLICIES[case]
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload")
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    before_nonces, before_files = nonces(devnet), files(devnet.home, tmp_path)
    proc = run(devnet, "store", str(source), "--policy", str(policy), check=2)
    assert field in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert nonces(devnet) == before_nonces
    assert files(devnet.home, tmp_path) == before_files


def test_bad_arguments_exit_2_and_send_nothing(devnet, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload")
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD_POLICY)
    before_nonces, before_files = nonces(devnet), files(devnet.home, tmp_path)
    cases = [
        (("store", str(tmp_path / "missing.bin"), "--policy", str(policy)), "no such file"),
        (("store", str(source), "--policy", str(tmp_path / "nope.yaml")), "--policy"),
        (("store", str(source), "--policy", str(policy), "--as", "nobody"), "--as 'nobody'"),
        (("store", str(source), "--policy", str(policy), "--as", str(tmp_path / "none.key")),
         "--as"),
        (("request", "0x" + "ab" * 31), "DATASET"),
        (("request", "0x" + "zz" * 32), "DATASET"),
        (("request", "0x" + "ab" * 32, "--location", str(tmp_path / "missing.json")), "--location"),
        (("geo", "attest", "--for", "0xdeadbeef", "--lat", "1", "--lon", "1", "-o",
          str(tmp_path / "a.json")), "0xdeadbeef"),
        (("approve", "not-a-number", "--as", "client-rep"), "REQUEST"),
        (("fetch", "999", "-o", str(tmp_path / "out.bin")), "request 999"),
        (("fetch", "999", "-o", str(tmp_path / "out.bin"), "--as", "nobody"), "--as 'nobody'"),
    ]
    for args, field in cases:
        proc = run(devnet, *args, check=2)
        assert field in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout, args
    assert nonces(devnet) == before_nonces
    assert files(devnet.home, tmp_path) == before_files


def test_wrong_keystore_passphrase_exits_2_and_sends_nothing(devnet, tmp_path: Path, owner_keystore,
                                                             monkeypatch) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload")
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD_POLICY)
    monkeypatch.setenv("SHARDKEY_PASSWORD", "wrong horse")
    before_nonces, before_files = nonces(devnet), files(devnet.home, tmp_path)
    for args in (("store", str(source), "--policy", str(policy), "--as", str(owner_keystore)),
                 ("revoke", "0x" + "ab" * 32, "--as", str(owner_keystore))):
        proc = run(devnet, *args, check=2)
        assert "wrong passphrase" in proc.stderr and str(owner_keystore) in proc.stderr, proc.stderr
        assert "right horse" not in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr
    monkeypatch.delenv("SHARDKEY_PASSWORD")
    proc = run(devnet, "store", str(source), "--policy", str(policy), "--as", str(owner_keystore),
               check=2)  # no passphrase at all, stdin not a terminal
    assert "SHARDKEY_PASSWORD" in proc.stderr
    assert nonces(devnet) == before_nonces
    assert files(devnet.home, tmp_path) == before_files


# --- security hygiene -------------------------------------------------------------------------

def _secrets(home: Path, extra: list[str]) -> dict[str, str]:
    """label -> lowercase hex (or text) of every secret the devnet and this run used."""
    secrets: dict[str, str] = {}
    for key_file in (home / "keys").glob("*.key"):
        secrets[f"account key {key_file.name}"] = key_file.read_text().strip().removeprefix("0x").lower()
    for passphrase in home.rglob("passphrase"):
        text = passphrase.read_text().rstrip("\n")
        secrets[f"passphrase {passphrase.relative_to(home)}"] = text
        for keystore in passphrase.parent.glob("*.json"):
            try:
                body = json.loads(keystore.read_text())
            except ValueError:
                continue
            if isinstance(body, dict) and "ciphertext" in body and "salt" in body:
                key = load_hpke_keystore(keystore, text)
                secrets[f"HPKE key {keystore.relative_to(home)}"] = key.to_bytes().hex()
                secrets[f"HPKE raw key {keystore.relative_to(home)}"] = key.to_bytes()[1:].hex()
    for ephemeral in (home / "requests").rglob("*"):
        if ephemeral.is_file() and ephemeral.suffix != ".json":
            secrets[f"ephemeral key {ephemeral.name}"] = ephemeral.read_text().strip().lower()
    for i, text in enumerate(extra):
        secrets[f"extra secret {i}"] = text
    return {label: value for label, value in secrets.items() if len(value) >= 8}


def _secret_files(home: Path) -> set[Path]:
    """Files that hold secrets by design (the scan skips them; their mode must be 0600)."""
    out = set((home / "keys").glob("*.key")) | set(home.rglob("passphrase"))
    out |= {p for p in home.rglob("*.json") if p.is_file() and "ciphertext" in p.read_text(errors="ignore")}
    out |= {p for p in (home / "requests").rglob("*") if p.is_file()}
    return out


def test_full_run_leaks_no_secret_and_key_files_are_0600(devnet, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    policy = tmp_path / "p.yaml"
    policy.write_text(APPROVAL_POLICY)
    dataset = json.loads(run(devnet, "store", str(source), "--policy", str(policy), "--shard-size",
                             "65536", "--json").stdout)["dataset"]
    request = json.loads(run(devnet, "request", dataset, "--json").stdout)
    rid = str(request["request"])
    run(devnet, "approve", rid, "--as", "client-rep", "--yes")
    out = tmp_path / "restored.bin"
    run(devnet, "fetch", rid, "-o", str(out))
    assert out.read_bytes() == data
    run(devnet, "audit", "log", "--dataset", dataset)
    run(devnet, "audit", "verify", dataset)
    run(devnet, "devnet", "status")

    home = devnet.home
    secrets = _secrets(home, ["right horse battery staple"])
    assert sum(label.startswith("HPKE key") for label in secrets) >= 6  # KOS + 5 holders
    assert sum(label.startswith("account key") for label in secrets) >= 5
    secret_files = _secret_files(home)
    scanned: list[tuple[str, bytes]] = [(f"cli output {i}", text.encode()) for i, text in enumerate(OUTPUTS)]
    for path in home.rglob("*"):
        if path.is_file() and path not in secret_files and "datasets" not in path.parts \
                and "staging" not in path.parts:
            scanned.append((str(path.relative_to(home)), path.read_bytes()))
    assert any(name.startswith("logs/") for name, _ in scanned)
    leaks = []
    for name, content in scanned:
        lowered = content.lower()
        for label, secret in secrets.items():
            needle = secret.lower().encode()
            if needle in lowered or (all(c in "0123456789abcdef" for c in secret)
                                     and bytes.fromhex(secret) in content):
                leaks.append(f"{label} in {name}")
    assert leaks == []

    # modes: every secret file 0600, no world-readable secret, private folders 0700
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "devnet.json").stat().st_mode) == 0o600
    for path in home.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_file() and (path.suffix == ".toml" or "datasets" in path.parts
                               or "staging" in path.parts):
            assert not mode & 0o077, f"{path} is {oct(mode)}"
        # holders/<name>/ itself is 0755 (created by `devnet up`); the home above it is 0700
        # and every secret file in it 0600, so nothing is reachable by other users
