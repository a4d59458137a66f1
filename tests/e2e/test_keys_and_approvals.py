"""Keys and approvals through the CLI on a real devnet: every HPKE key made is the hybrid
post-quantum suite unless X25519 is asked for; a request's ephemeral private key is gone
once the request is completed, denied or expired (0600 while it exists); ``approve`` shows
what it binds and never approves without a terminal or ``--yes``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from eth_utils.crypto import keccak

from shardkey.chain.attestation import AttestationReader
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.deployment import Deployment
from shardkey.crypto.hpke import HpkePrivateKey, HpkeSuiteId
from shardkey.keys import load_hpke_keystore

HYBRID_PUBLIC_LEN = 1216

APPROVAL_POLICY = """\
requesters: [requester]
geo:
  attestors: [attestor]
  max_age: 600
  regions:
    - {lat: 48.8566, lon: 2.3522, radius_km: 50}
approvals:
  - {group: ops, members: [client-rep], required: 1}
threshold: 3
"""
SHORT_WINDOW_POLICY = "requesters: [requester]\napproval_window: 1\nthreshold: 3\n"


def store(devnet, tmp_path: Path, data: bytes, policy: str) -> str:
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    (tmp_path / "policy.yaml").write_text(policy)
    return devnet.json("store", str(source), "--policy", str(tmp_path / "policy.yaml"),
                       "--shard-size", "65536")["dataset"]


def chain(devnet) -> ShardKeyChain:
    return ShardKeyChain(Deployment.load(devnet.home / "deployment.json"))


def everything_under(home: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in home.rglob("*") if p.is_file()]


def test_devnet_and_request_keys_are_hybrid_by_default(devnet, tmp_path: Path) -> None:
    home = devnet.home
    on_chain = chain(devnet)
    committee = on_chain.committee.committee()
    for i, entry in enumerate(devnet.devnet["kos_members"]):
        data_dir = Path(entry["data_dir"])
        key = load_hpke_keystore(data_dir / "hpke.json", (data_dir / "passphrase").read_text())
        assert key.suite is HpkeSuiteId.MLKEM768_X25519, entry["name"]
        assert committee.hpke_public_keys[i] == key.public_key_bytes()
        assert len(key.public_key_bytes()) == HYBRID_PUBLIC_LEN
    for entry in devnet.devnet["holders"]:
        data_dir = Path(entry["data_dir"])
        key = load_hpke_keystore(data_dir / "hpke.json", (data_dir / "passphrase").read_text())
        assert key.suite is HpkeSuiteId.MLKEM768_X25519, entry["name"]
        assert on_chain.holders.holder(entry["address"]).hpke_public_key == key.public_key_bytes()
    dataset = store(devnet, tmp_path, os.urandom(3000), "requesters: [requester]\nthreshold: 3\n")
    rid = devnet.json("request", dataset)["request"]
    key = HpkePrivateKey.from_bytes(bytes.fromhex((home / "requests" / f"{rid}.hpke").read_text()))
    assert key.suite is HpkeSuiteId.MLKEM768_X25519
    stored = on_chain.retrievals.request(rid)
    assert stored.ephemeral_key_hash == keccak(key.public_key_bytes())  # only the hash is stored
    assert AttestationReader(on_chain, 0).ephemeral_key(stored) == key.public_key_bytes()
    out = tmp_path / "restored.bin"
    devnet.run("fetch", str(rid), "-o", str(out))  # hybrid tokens and deliveries end to end
    classic = devnet.json("request", dataset, "--hpke-suite", "x25519")["request"]
    assert len(AttestationReader(on_chain, 0).ephemeral_key(on_chain.retrievals.request(classic))) == 32
    proc = devnet.run("request", dataset, "--hpke-suite", "rsa", check=2)
    assert "mlkem768-x25519" in proc.stderr and "x25519" in proc.stderr


def test_ephemeral_key_is_deleted_once_completed_denied_or_expired(devnet, tmp_path: Path) -> None:
    home = devnet.home
    requests = home / "requests"
    dataset = store(devnet, tmp_path, os.urandom(5000), APPROVAL_POLICY)
    paris = tmp_path / "paris.json"
    devnet.run("geo", "attest", "--for", "requester", "--lat", "48.86", "--lon", "2.35", "-o", str(paris))
    rid = devnet.json("request", dataset, "--location", str(paris))["request"]
    key_file = requests / f"{rid}.hpke"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # while it exists: owner only
    assert stat.S_IMODE(requests.stat().st_mode) == 0o700
    private = bytes.fromhex(key_file.read_text())
    devnet.run("approve", str(rid), "--as", "client-rep", "--yes")
    out = tmp_path / "restored.bin"
    devnet.run("fetch", str(rid), "-o", str(out))
    assert chain(devnet).retrievals.request(rid).status.name == "COMPLETED"
    assert not key_file.exists()
    leaks = [str(p) for p, content in everything_under(home)
             if private[1:] in content or private.hex().encode() in content.lower()]
    assert leaks == []

    # denied at once by the contract: no key file is written at all
    proc = devnet.run("request", dataset, "--location", str(paris), "--as", "outsider", check=3)
    denied = int(proc.stdout.split()[0])
    assert not (requests / f"{denied}.hpke").exists()

    # approved, then its window ends (chain time): the next request command deletes the key
    short = store(devnet, tmp_path, os.urandom(100), SHORT_WINDOW_POLICY)
    expiring = devnet.json("request", short)["request"]
    assert (requests / f"{expiring}.hpke").exists()
    on_chain = chain(devnet)
    deadline = on_chain.retrievals.request(expiring).deadline
    while on_chain.client.latest_timestamp() <= deadline:
        time.sleep(0.25)
    latest = devnet.json("request", short)["request"]
    assert not (requests / f"{expiring}.hpke").exists()
    assert (requests / f"{latest}.hpke").exists()  # still open: kept
    now = on_chain.client.latest_timestamp()
    for kept in requests.iterdir():  # every key left belongs to a request that can still be served
        info = on_chain.retrievals.request(int(kept.stem))
        assert info.status.name == "PENDING" or (info.status.name == "APPROVED" and info.deadline >= now
                                                 ) or int(kept.stem) == latest, kept.name


def _approve_without_terminal(devnet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shardkey", "--home", str(devnet.home), "approve", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)


def test_approve_shows_what_it_binds_and_needs_yes_without_a_terminal(devnet, tmp_path: Path) -> None:
    dataset = store(devnet, tmp_path, os.urandom(1000), APPROVAL_POLICY)
    paris = tmp_path / "paris.json"
    devnet.run("geo", "attest", "--for", "requester", "--lat", "48.86", "--lon", "2.35", "--accuracy", "40",
               "-o", str(paris))
    rid = str(devnet.json("request", dataset, "--location", str(paris))["request"])
    requester = devnet.devnet["accounts"]["requester"]["address"]
    attestor = devnet.devnet["accounts"]["attestor"]["address"]
    on_chain = chain(devnet)
    approver = devnet.devnet["accounts"]["client-rep"]["address"]
    nonce = on_chain.client.w3.eth.get_transaction_count(approver)

    proc = _approve_without_terminal(devnet, rid, "--as", "client-rep")
    assert proc.returncode == 2, proc.stderr
    assert "needs confirmation" in proc.stderr and "--yes" in proc.stderr
    shown = proc.stdout
    assert f"dataset     {dataset}" in shown
    assert f"requester   requester ({requester})" in shown
    assert f"48.860000, 2.350000 +/- 40 m, attested by attestor ({attestor})" in shown
    assert "MLKEM768_X25519" in shown and "open 3600 s once approved" in shown
    for wrong in (("--dataset", "0x" + "11" * 32), ("--requester", "outsider")):
        proc = _approve_without_terminal(devnet, rid, "--as", "client-rep", "--yes", *wrong)
        assert proc.returncode == 2 and wrong[0] in proc.stderr, proc.stderr
    assert on_chain.client.w3.eth.get_transaction_count(approver) == nonce  # nothing was sent
    assert on_chain.retrievals.request(int(rid)).status.name == "PENDING"

    proc = _approve_without_terminal(devnet, rid, "--as", "client-rep", "--yes", "--dataset", dataset,
                                     "--requester", "requester")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(f"request {rid}: approved")
    proc = _approve_without_terminal(devnet, rid, "--as", "client-rep", "--yes")
    assert proc.returncode == 2 and "only a pending request can be approved" in proc.stderr
