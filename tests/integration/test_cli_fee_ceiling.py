"""The CLI's transactions obey max_fee_gwei, as the services' do (``--max-fee-gwei``, or
``max_fee_gwei`` in the ``--network`` file): above it nothing is sent, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eth_account import Account

from shardkey.keys import save_plain_account_key
from tests.support.devchain import DevChain

ONE_WEI = "0.000000001"  # gwei: below any base fee plus tip


def _shardkey(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDKEY_")}
    return subprocess.run([sys.executable, "-m", "shardkey", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env, check=False)


def test_admin_and_network_commands_send_nothing_above_the_ceiling(devchain: DevChain,
                                                                   tmp_path: Path) -> None:
    devchain.deployment.save(tmp_path / "deployment.json")
    save_plain_account_key(tmp_path / "admin.key", devchain.accounts["admin"])
    outsider = Account.create().address
    grant = ("kos", "role", "grant", outsider, "--as", "admin.key", "--deployment", "deployment.json")
    sender = devchain.accounts["admin"].address
    nonce = devchain.client.raw("eth_getTransactionCount", [sender, "pending"])

    flagged = _shardkey(tmp_path, "--max-fee-gwei", ONE_WEI, *grant)
    assert flagged.returncode == 2, flagged.stderr
    assert "above max_fee_gwei" in flagged.stderr and "nothing was sent" in flagged.stderr

    (tmp_path / "network.yaml").write_text(f"deployment: deployment.json\nmax_fee_gwei: {ONE_WEI}\n"
                                           "accounts:\n  admin: admin.key\n")
    from_file = _shardkey(tmp_path, "--network", "network.yaml", *grant[:4], "--as", "admin")
    assert from_file.returncode == 2, from_file.stderr
    assert "above max_fee_gwei" in from_file.stderr
    assert devchain.client.raw("eth_getTransactionCount", [sender, "pending"]) == nonce
    assert not devchain.chain.retrievals.has_kos_role(outsider)

    (tmp_path / "bad.yaml").write_text("deployment: deployment.json\nmax_fee_gwei: cheap\n")
    bad = _shardkey(tmp_path, "--network", "bad.yaml", "audit", "log")
    assert bad.returncode == 2 and "max_fee_gwei must be a positive number" in bad.stderr, bad.stderr

    roomy = _shardkey(tmp_path, "--max-fee-gwei", "1000", *grant)  # under the ceiling: sent
    assert roomy.returncode == 0, roomy.stderr
    assert devchain.chain.retrievals.has_kos_role(outsider)
