"""Store then fetch through the CLI against a real devnet: byte-identical for every size,
and every denial path exits 3 and shows in the audit log."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

OPEN_POLICY = "requesters: [requester]\nthreshold: 3\n"

APPROVAL_POLICY = """\
requesters: [requester]
approvals:
  - {group: client, members: [client-rep], required: 1}
  - {group: provider, members: [provider-rep], required: 1}
threshold: 3
"""

GEO_POLICY = """\
requesters: [requester]
geo:
  attestors: [attestor]
  max_age: 600
  regions:
    - {lat: 48.8566, lon: 2.3522, radius_km: 50}
threshold: 3
"""

FUTURE_POLICY = """\
requesters: [requester]
time:
  not_before: 2099-01-01T00:00:00Z
threshold: 3
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def store(devnet, tmp_path: Path, data: bytes, policy: str, *extra: str) -> str:
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    out = devnet.json("store", str(source), "--policy", str(write(tmp_path / "policy.yaml", policy)),
                      "--shard-size", "65536", *extra)
    return out["dataset"]


@pytest.mark.parametrize("size", [0, 1, 1 << 20, 64 << 20], ids=["0B", "1B", "1MiB", "64MiB"])
def test_store_then_fetch_is_byte_identical(devnet, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    extra = ("--shard-size", str(1 << 20)) if size > (1 << 20) else ()
    dataset = store(devnet, tmp_path, data, OPEN_POLICY, *extra)
    request = devnet.json("request", dataset)
    assert request["state"] == "approved"
    out = tmp_path / "restored.bin"
    devnet.run("fetch", str(request["request"]), "-o", str(out))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert out.stat().st_size == size
    verify = devnet.run("audit", "verify", dataset, "--json")
    assert '"ok": false' not in verify.stdout


def test_default_shards_are_4_mib_and_fitted_to_a_file_of_one_stripe(devnet, tmp_path: Path) -> None:
    """Without --shard-size a file of more than 3 x 4 MiB is cut into 4 MiB shards, and a
    smaller one into the whole pages that hold a third of it: 1 MiB is stored as 5 x 344 KiB,
    not 5 x 4 MiB of mostly padding, and both restore byte for byte."""
    policy = write(tmp_path / "policy.yaml", OPEN_POLICY)
    for size, shard_size, shards in ((1 << 20, 352256, 5), ((12 << 20) + 1, 4 << 20, 10)):
        data = os.urandom(size)
        source = tmp_path / "input.bin"
        source.write_bytes(data)
        stored = devnet.json("store", str(source), "--policy", str(policy))
        assert (stored["shard_size"], stored["shards"]) == (shard_size, shards)
        verify = devnet.run("audit", "verify", stored["dataset"], "--json")
        assert '"ok": true' in verify.stdout and '"ok": false' not in verify.stdout
        request = devnet.json("request", stored["dataset"])
        out = tmp_path / "restored.bin"
        devnet.run("fetch", str(request["request"]), "-o", str(out))
        assert out.read_bytes() == data


def test_denied_requester_exits_3(devnet, tmp_path: Path) -> None:
    dataset = store(devnet, tmp_path, b"secret", OPEN_POLICY)
    proc = devnet.run("request", dataset, "--as", "outsider", check=3)
    assert "denied: NotAllowedRequester" in proc.stdout


def test_denied_before_time_window_exits_3(devnet, tmp_path: Path) -> None:
    dataset = store(devnet, tmp_path, b"secret", FUTURE_POLICY)
    proc = devnet.run("request", dataset, check=3)
    assert "denied: TooEarly" in proc.stdout


def test_denied_outside_geofence_exits_3(devnet, tmp_path: Path) -> None:
    dataset = store(devnet, tmp_path, b"secret", GEO_POLICY)
    proof = tmp_path / "london.json"
    devnet.run("geo", "attest", "--for", "requester", "--lat", "51.5074", "--lon", "-0.1278",
               "-o", str(proof))
    proc = devnet.run("request", dataset, "--location", str(proof), check=3)
    assert "denied: OutsideRegions" in proc.stdout
    inside = tmp_path / "paris.json"
    devnet.run("geo", "attest", "--for", "requester", "--lat", "48.86", "--lon", "2.35", "-o", str(inside))
    assert devnet.json("request", dataset, "--location", str(inside))["state"] == "approved"
    proc = devnet.run("request", dataset, check=3)
    assert "denied: MissingAttestation" in proc.stdout


def test_missing_approval_cannot_fetch_and_writes_nothing(devnet, tmp_path: Path) -> None:
    dataset = store(devnet, tmp_path, b"secret" * 1000, APPROVAL_POLICY)
    request = devnet.json("request", dataset)
    assert request["state"] == "pending"
    rid = str(request["request"])
    devnet.run("approve", rid, "--as", "client-rep", "--yes")
    out = tmp_path / "out.bin"
    proc = devnet.run("fetch", rid, "-o", str(out), "--timeout", "3", check=3)
    assert "approvals are missing" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.bin.*"))
    devnet.run("approve", rid, "--as", "requester", "--yes", check=2)  # self-approval and non-member refused
    devnet.run("approve", rid, "--as", "provider-rep", "--yes")
    devnet.run("fetch", rid, "-o", str(out))
    assert out.read_bytes() == b"secret" * 1000


def test_revoked_dataset_is_denied(devnet, tmp_path: Path) -> None:
    dataset = store(devnet, tmp_path, b"secret", OPEN_POLICY)
    devnet.run("revoke", dataset)
    proc = devnet.run("request", dataset, check=3)
    assert "denied: DatasetRevoked" in proc.stdout


def test_every_denial_shows_in_audit_log(devnet, tmp_path: Path) -> None:
    dataset = store(devnet, tmp_path, b"secret", GEO_POLICY)
    devnet.run("request", dataset, "--as", "outsider", check=3)
    devnet.run("request", dataset, check=3)
    log = devnet.json("audit", "log", "--dataset", dataset)
    outcomes = [r["outcome"] for r in log["requests"]]
    assert any("NotAllowedRequester" in o for o in outcomes)
    assert any("MissingAttestation" in o for o in outcomes)
    csv = devnet.run("audit", "log", "--dataset", dataset, "--csv").stdout.splitlines()
    assert csv[0] == "block,tx,event,request,dataset,actor,details"
    assert sum("RetrievalDenied" in line for line in csv) == 2


def test_bad_input_exits_2_and_sends_nothing(devnet, tmp_path: Path) -> None:
    source = write(tmp_path / "in.txt", "x")
    bad = write(tmp_path / "bad.yaml", "requesters: [requester]\nsurprise: 1\n")
    proc = devnet.run("store", str(source), "--policy", str(bad), check=2)
    assert "surprise" in proc.stderr
    proc = devnet.run("store", str(tmp_path / "missing.bin"), "--policy", str(bad), check=2)
    assert "no such file" in proc.stderr
    proc = devnet.run("request", "0x1234", check=2)
    assert "DATASET" in proc.stderr
    proc = devnet.run("store", str(source), "--policy", str(write(tmp_path / "p.yaml", OPEN_POLICY)),
                      "--as", "nobody", check=2)
    assert "--as 'nobody'" in proc.stderr
