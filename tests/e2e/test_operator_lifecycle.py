"""An operator's first day on a network that is not the devnet, with the documented commands only.

A fresh anvil on its own port and chain id stands in for a remote testnet (no `devnet up`);
its `anvil_setBalance` stands in for a faucet. Every party works in its own folder of an
empty directory: deployer, KOS operator, holder operator (docs/OPERATIONS.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest

from shardkey.devnet.anvil import free_port, start_anvil
from shardkey.devnet.process import stop
from tests.support.operator import PASSPHRASE, Operator, end, status_when_saved, wait_for

CHAIN_ID = 4242


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    root = tmp_path_factory.mktemp("operator")
    pid, url = start_anvil(root / "anvil.log", port=free_port(), block_time=1.0, chain_id=CHAIN_ID)
    (root / "work").mkdir()
    try:
        yield Operator(root / "work", url)
    finally:
        stop(pid)


def test_deploy_keys_and_lifecycle_from_an_empty_folder(operator: Operator) -> None:
    op, root = operator, operator.root
    for party in ("deployer", "kos-op", "holder-op"):
        (root / party).mkdir()
        (root / party / "pass").write_text(PASSPHRASE + "\n")
        os.chmod(root / party / "pass", 0o600)

    # Deployer: a V3 keystore, funded, then the deploy. No KOS key goes in the deployment file:
    # the committee's members and their HPKE keys are recorded on chain.
    admin = op.json("keys", "new", "--kind", "eth", "-o", "deployer/admin.json",
                    "--passphrase-file", "deployer/pass")
    assert json.loads((root / "deployer/admin.json").read_text())["version"] == 3
    op.fund(admin["address"])
    deployed = op.json("network", "deploy", "--rpc", op.rpc_url, "--as", "deployer/admin.json",
                       "--passphrase-file", "deployer/pass", "--chain-id", str(CHAIN_ID),
                       "-o", "deployer/deployment.json")
    assert deployed["next"] == "shardkey kos committee start"
    deployment = json.loads((root / "deployer/deployment.json").read_text())
    assert deployment["chain_id"] == CHAIN_ID and deployment["start_block"] == deployed["start_block"]
    assert "kos_public_key" not in deployment
    assert set(deployment["contracts"]) == {"HolderRegistry", "DatasetRegistry", "RetrievalCoordinator",
                                           "KosCommittee"}

    # KOS operator: a committee member's keys and settings.
    kos = op.json("kos", "init", "kos-op/kos", "--deployment", "deployer/deployment.json",
                  "--passphrase-file", "kos-op/pass", "--confirmations", "1")
    assert (root / "kos-op/kos/kos.toml").exists()
    assert oct((root / "kos-op/kos").stat().st_mode & 0o777) == "0o700"
    assert oct((root / "kos-op/kos/state").stat().st_mode & 0o777) == "0o700"
    assert "kos committee start --member" in kos["next"]
    shown = op.json("keys", "show", "kos-op/kos/kos.hpke.json")
    assert shown["kind"] == "hpke" and shown["public_key"] == kos["hpke_public_key"]
    assert shown["suite"] == "mlkem768-x25519" and "ciphertext" not in shown
    listed = op.json("keys", "list", "kos-op/kos")
    assert {r["kind"] for r in listed} == {"eth", "hpke"}
    assert all("crypto" not in r and "ciphertext" not in r for r in listed)

    # A member no committee epoch names: refused, saying what to do.
    proc = op.run("kos", "run", "--config", "kos-op/kos/kos.toml", check=3, timeout=60)
    assert "the committee admin starts an epoch" in proc.stderr, proc.stderr
    epoch = op.json("kos", "committee", "start", "--member", f"{kos['address']}=kos-op/kos/kos.hpke.json",
                    "--threshold", "1", "--as", "deployer/admin.json", "--deployment",
                    "deployer/deployment.json", "--passphrase-file", "deployer/pass", "--json")
    assert epoch["epoch"] == 1 and epoch["members"][0]["address"] == kos["address"]
    # Named, but no ETH: refused at start-up, saying what to do.
    proc = op.run("kos", "run", "--config", "kos-op/kos/kos.toml", check=3, timeout=60)
    assert "gas funds" in proc.stderr and kos["address"] in proc.stderr and "send ETH" in proc.stderr
    op.fund(kos["address"])
    kos_log = root / "kos.log"
    kos_proc = op.start("kos", "run", "--config", "kos-op/kos/kos.toml", log=kos_log)
    heartbeat = root / "kos-op/kos/state/heartbeat.json"
    holder_proc = None
    try:
        wait_for(lambda: json.loads(heartbeat.read_text())["ok"], 60, "KOS", kos_proc, kos_log)

        # Holder operator.
        port = free_port()
        holder = op.json("holder", "init", "holder-op/h1", "--deployment", "deployer/deployment.json",
                         "--listen-port", str(port), "--passphrase-file", "holder-op/pass",
                         "--confirmations", "1")
        assert oct((root / "holder-op/h1/data").stat().st_mode & 0o777) == "0o700"
        proc = op.run("holder", "run", "--config", "holder-op/h1/holder.toml", check=3)
        assert "shardkey holder register" in proc.stderr, proc.stderr
        register = ("holder", "register", "--config", "holder-op/h1/holder.toml",
                    "--endpoint", f"http://127.0.0.1:{port}", "--region", "eu-west",
                    "--lat", "48.8566", "--lon", "2.3522")
        proc = op.run(*register, check=2)  # not funded yet: nothing is sent
        assert "fund it first" in proc.stderr
        op.fund(holder["address"])
        op.run(*register)
        status = op.json("holder", "status", "--config", "holder-op/h1/holder.toml")
        assert status["status"] == "pending" and status["hpke_key_matches"] is True

        holder_log = root / "holder.log"
        holder_proc = op.start("holder", "run", "--config", "holder-op/h1/holder.toml", log=holder_log)
        endpoint = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{endpoint}/v1/health", timeout=1).status_code == 200, 60, "holder",
                 holder_proc, holder_log)
        assert any('"WARNING"' in line and "holder activate" in line
                   for line in holder_log.read_text().splitlines()), holder_log.read_text()

        op.run("holder", "activate", holder["address"], "--as", "deployer/admin.json",
               "--deployment", "deployer/deployment.json", "--passphrase-file", "deployer/pass")
        status = status_when_saved(op, "holder", "holder-op/h1/holder.toml")
        assert status["status"] == "active" and status["region"] == "eu-west"
        assert status["endpoint"] == endpoint and status["lat_e6"] == 48856600
        assert status["datasets"] == 0 and status["stored_bytes"] == 0 and status["custody_pending"] == 0
        assert status["funded"] is True and float(status["balance_eth"]) > 0
        assert isinstance(status["last_block_seen"], int) and 0 <= status["lag_blocks"] <= 5

        kos_status = status_when_saved(op, "kos", "kos-op/kos/kos.toml")
        assert kos_status["committee_epoch"] == 1 and kos_status["member_index"] == 0
        assert kos_status["hpke_key_matches"] is True and kos_status["threshold"] == 1
        assert kos_status["heartbeat_ok"] is True and kos_status["funded"] is True
        assert 0 <= kos_status["lag_blocks"] <= 5

        op.run("holder", "update", "--config", "holder-op/h1/holder.toml",
               "--endpoint", f"http://localhost:{port}")
        # the admin's transitions as the contract allows them: Failed -> Active, Failed -> Retired
        admin_args = ("--as", "deployer/admin.json", "--deployment", "deployer/deployment.json",
                      "--passphrase-file", "deployer/pass")
        steps = (("fail", "failed"), ("activate", "active"), ("fail", "failed"), ("retire", "retired"))
        for verb, state in steps:
            op.run("holder", verb, holder["address"], *admin_args)
            assert op.json("holder", "status", "--config", "holder-op/h1/holder.toml")["status"] == state
        status = op.json("holder", "status", "--config", "holder-op/h1/holder.toml")
        assert status["endpoint"] == f"http://localhost:{port}"

        # Auditor: only the deployment file and an address book, no key at all.
        (root / "auditor").mkdir()
        (root / "auditor/network.yaml").write_text(  # admin: only the keystore's clear address is read
            f"deployment: ../deployer/deployment.json\naddresses:\n  holder-1: \"{holder['address']}\"\n"
            "  admin: ../deployer/admin.json\n")
        rows = json.loads(op.run("--network", "auditor/network.yaml", "audit", "log",
                                 "--json").stdout)["events"]
        actors = {(r["event"], r["actor"]) for r in rows}
        assert ("HolderRegistered", "holder-1") in actors and ("HolderActivated", "admin") in actors, rows

        # KOS_ROLE is the committee contract's alone: the member's account does not hold it
        proc = op.run("kos", "role", "revoke", kos["address"], "--as", "deployer/admin.json",
                      "--deployment", "deployer/deployment.json", "--passphrase-file", "deployer/pass",
                      check=2)
        assert "does not hold KOS_ROLE" in proc.stderr
    finally:
        assert end(kos_proc) == 0, kos_log.read_text()
        if holder_proc is not None:
            assert end(holder_proc) == 0


def test_each_operator_command_refuses_bad_input_with_exit_2(operator: Operator) -> None:
    op, root = operator, operator.root
    bad = root / "bad"
    bad.mkdir()
    (bad / "pass").write_text(PASSPHRASE)
    (bad / "wrong").write_text("wrong horse")
    (bad / "notes.txt").write_text("not a key")
    admin = op.json("keys", "new", "--kind", "eth", "-o", "bad/admin.json", "--passphrase-file", "bad/pass")
    kos_key = op.json("keys", "new", "--kind", "hpke", "--hpke-suite", "x25519", "-o", "bad/kos.json",
                      "--passphrase-file", "bad/pass")
    assert kos_key["suite"] == "x25519"
    op.fund(admin["address"])
    deploy = ("network", "deploy", "--rpc", op.rpc_url, "--as", "bad/admin.json", "--passphrase-file",
              "bad/pass")
    op.run(*deploy, "-o", "bad/deployment.json")
    outsider = op.json("keys", "new", "--kind", "eth", "-o", "bad/outsider.json", "--passphrase-file",
                       "bad/pass")
    op.fund(outsider["address"])
    op.run("holder", "init", "bad/h", "--deployment", "bad/deployment.json", "--listen-port", "9",
           "--passphrase-file", "bad/pass")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    admin_args = ("--as", "bad/admin.json", "--deployment", "bad/deployment.json", "--passphrase-file",
                  "bad/pass")
    cases: list[tuple[tuple[str, ...], str]] = [
        (("keys", "new", "--kind", "rsa", "-o", "bad/x.json"), "--kind"),
        (("keys", "new", "--kind", "eth", "-o", "bad/admin.json", "--passphrase-file", "bad/pass"),
         "already exists"),
        (("keys", "new", "--kind", "eth", "-o", "bad/none/x.json", "--passphrase-file", "bad/pass"),
         "does not exist"),
        (("keys", "new", "--kind", "eth", "-o", "bad/x.json"), "SHARDKEY_PASSWORD"),  # no source, no tty
        (("keys", "show", "bad/missing.json"), "no such key file"),
        (("keys", "show", "bad/notes.txt"), "not a hex private key"),
        (("keys", "list", "bad/missing"), "no such folder"),
        ((*deploy, "-o", "bad/deployment.json"), "already exists"),
        ((*deploy, "--kos-hpke-key", "bad/kos.json", "-o", "bad/d2.json"), "No such option: --kos-hpke-key"),
        ((*deploy, "--chain-id", "1", "-o", "bad/d2.json"), "--chain-id 1"),
        (("network", "deploy", "--rpc", op.rpc_url, "--as", "bad/admin.json", "--passphrase-file",
          "bad/wrong", "-o", "bad/d2.json"), "wrong passphrase"),
        (("network", "deploy", "--rpc", op.rpc_url, "--as", "bad/nobody.json", "-o", "bad/d2.json"),
         "--as bad/nobody.json"),
        (("holder", "init", "bad/h", "--deployment", "bad/deployment.json", "--listen-port", "9",
          "--passphrase-file", "bad/pass"), "already exists"),
        (("holder", "init", "bad/h2", "--deployment", "bad/deployment.json", "--listen-port", "0"),
         "--listen-port"),
        (("holder", "register", "--config", "bad/h/holder.toml", "--endpoint", "ftp://x", "--region", "eu",
          "--lat", "1", "--lon", "1"), "--endpoint"),
        (("holder", "register", "--config", "bad/h/holder.toml", "--endpoint", "http://x", "--region", "eu",
          "--lat", "91", "--lon", "1"), "--lat"),
        (("holder", "register", "--config", "bad/missing.toml", "--endpoint", "http://x", "--region", "eu",
          "--lat", "1", "--lon", "1"), "no such settings file"),
        (("holder", "update", "--config", "bad/h/holder.toml"), "not registered"),
        (("holder", "status", "--config", "bad/missing.toml"), "no such settings file"),
        (("holder", "activate", "0x1234", *admin_args), "HOLDER"),
        (("holder", "activate", outsider["address"], *admin_args), "not registered"),
        (("holder", "retire", outsider["address"], *admin_args), "not registered"),
        (("kos", "init", "bad/notes.txt", "--deployment", "bad/deployment.json", "--passphrase-file",
          "bad/pass"), "exists and is not a folder"),
        (("kos", "committee", "start", "--member", f"{outsider['address']}=bad/kos.json", "--threshold", "2",
          *admin_args), "--threshold 2: more than the 1 member(s) given"),
        (("kos", "committee", "start", "--member", f"{outsider['address']}=bad/admin.json", "--threshold",
          "1", *admin_args), "an account keystore, not an HPKE keystore"),
        (("kos", "role", "grant", "nope", *admin_args), "ADDRESS"),
        (("kos", "role", "revoke", outsider["address"], *admin_args), "does not hold KOS_ROLE"),
        (("kos", "role", "grant", outsider["address"], "--as", "bad/outsider.json", "--deployment",
          "bad/deployment.json", "--passphrase-file", "bad/pass"), "not the RetrievalCoordinator admin"),
        (("kos", "status", "--config", "bad/missing.toml"), "no such settings file"),
    ]
    for args, expected in cases:
        proc = op.run(*args, check=2)
        assert expected in proc.stderr, (args, proc.stderr)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing half-written
