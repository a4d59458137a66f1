"""``shardkey kos committee start|show``: the admin starts committee epochs from member key
files made by ``shardkey kos init``; bad input says what is wrong and sends nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eth_account import Account

from shardkey.chain.bindings import ShardKeyChain
from shardkey.keys import save_plain_account_key


def _shardkey(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDKEY_")}
    return subprocess.run([sys.executable, "-m", "shardkey", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env, check=False)


def _member(cwd: Path, name: str) -> dict[str, str]:
    passphrase = cwd / "pass.txt"
    passphrase.write_text("correct horse battery staple\n")
    made = _shardkey(cwd, "kos", "init", name, "--deployment", "deployment.json", "--passphrase-file",
                     str(passphrase), "--json")
    assert made.returncode == 0, made.stderr
    info: dict[str, str] = json.loads(made.stdout)
    return info


def test_admin_starts_epochs_from_kos_init_folders_and_show_lists_them(automine_chain: ShardKeyChain,
                                                                       tmp_path: Path) -> None:
    chain = automine_chain
    chain.deployment.save(tmp_path / "deployment.json")
    save_plain_account_key(tmp_path / "admin.key", chain.admin)  # type: ignore[attr-defined]
    members = [_member(tmp_path, f"kos-{i}") for i in range(3)]
    admin = ("--as", "admin.key", "--deployment", "deployment.json")
    specs = [f"--member={m['address']}={m['hpke_keystore']}" for m in members]

    started = _shardkey(tmp_path, "kos", "committee", "start", *specs, "--threshold", "2", "--json", *admin)
    assert started.returncode == 0, started.stderr
    report = json.loads(started.stdout)
    assert report["epoch"] == 1 and report["threshold"] == 2
    assert [m["address"] for m in report["members"]] == [m["address"] for m in members]
    on_chain = chain.committee.committee(1)  # type: ignore[union-attr]
    assert on_chain.hpke_public_keys[0].hex() == members[0]["hpke_public_key"][2:]

    # a second epoch with one member retired and t_k changed; the first stays as it was
    hex_spec = f"--member={members[2]['address']}={members[2]['hpke_public_key']}"
    second = _shardkey(tmp_path, "kos", "committee", "start", specs[0], hex_spec, "--threshold", "1",
                       "--json", *admin)
    assert second.returncode == 0, second.stderr
    shown = _shardkey(tmp_path, "kos", "committee", "show", "--epoch", "1", "--deployment", "deployment.json",
                      "--json")
    assert shown.returncode == 0, shown.stderr
    first = json.loads(shown.stdout)
    assert first["newest_epoch"] == 2 and first["threshold"] == 2 and len(first["members"]) == 3


def test_bad_members_are_named_and_nothing_is_sent(automine_chain: ShardKeyChain, tmp_path: Path) -> None:
    chain = automine_chain
    chain.deployment.save(tmp_path / "deployment.json")
    save_plain_account_key(tmp_path / "admin.key", chain.admin)  # type: ignore[attr-defined]
    member = _member(tmp_path, "kos-0")
    admin = ("--as", "admin.key", "--deployment", "deployment.json")
    good = f"--member={member['address']}={member['hpke_keystore']}"
    cases = {
        "no key": ([f"--member={member['address']}"], "write ACCOUNT=HPKE_KEY"),
        "short key": ([f"--member={member['address']}=0x" + "ab" * 31], "got 31"),
        "account as hpke": ([f"--member={member['address']}={tmp_path / 'kos-0' / 'account.json'}"],
                            "an account keystore, not an HPKE keystore"),
        "twice": ([good, good], "is given twice"),
        "threshold": ([good, "--threshold", "3"], "more than the 1 member(s) given"),
    }
    sender = chain.admin.address  # type: ignore[attr-defined]
    nonce = chain.client.raw("eth_getTransactionCount", [sender, "pending"])
    for name, (args, message) in cases.items():
        extra = () if "--threshold" in args else ("--threshold", "1")
        run = _shardkey(tmp_path, "kos", "committee", "start", *args, *extra, *admin)
        assert run.returncode == 2, (name, run.stdout, run.stderr)
        assert message in run.stderr, (name, run.stderr)
    assert chain.client.raw("eth_getTransactionCount", [sender, "pending"]) == nonce
    assert chain.committee.current_epoch() == 0  # type: ignore[union-attr]
    outsider = Account.create()
    save_plain_account_key(tmp_path / "outsider.key", outsider)
    unfunded = _shardkey(tmp_path, "kos", "committee", "start", good, "--threshold", "1",
                         "--as", "outsider.key", "--deployment", "deployment.json")
    assert unfunded.returncode == 2 and "fund it first" in unfunded.stderr, unfunded.stderr
    shown = _shardkey(tmp_path, "kos", "committee", "show", "--deployment", "deployment.json")
    assert shown.returncode == 2 and "no committee epoch was started yet" in shown.stderr, shown.stderr
