"""``shardkey devnet up|down|status``: a whole ShardKey network on loopback.

``up`` starts anvil, creates and funds named accounts, deploys the contracts, starts KOS
committee epoch 1 of ``kos_members`` member processes with threshold ``kos_threshold``
(default 3 members, threshold 2: :mod:`shardkey.devnet.committee`), registers and activates the
holders (distinct regions), writes service settings, starts the members, the holder agents and
the repair service (account ``repairer``, granted REPAIRER_ROLE at deploy; ``repairer=False``
leaves it out) in the background, and writes ``HOME/devnet.json``. Running it again on a
devnet whose anvil runs starts again any KOS member or holder that died, from its
state folder (:mod:`shardkey.devnet.supervise`); when anvil died the chain is gone, and
``up`` says so (:class:`~shardkey.devnet.supervise.ChainLostError`) instead of silently
starting another. ``down`` stops every process it started, by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.connection import ChainClient
from shardkey.chain.deploy import deploy_all
from shardkey.crypto.hpke import DEFAULT_SUITE, HpkePrivateKey, HpkeSuiteId
from shardkey.devnet.anvil import start_anvil
from shardkey.devnet.committee import DEFAULT_MEMBERS, check_committee, member_names, setup_members
from shardkey.devnet.info import DevnetInfo as DevnetInfo  # re-exported
from shardkey.devnet.process import DevnetError, is_running, stop
from shardkey.devnet.regions import region_for
from shardkey.devnet.spawner import Spawner
from shardkey.devnet.supervise import chain_lost, revive, service_env, wait_ready
from shardkey.fsutil import atomic_write_bytes
from shardkey.keys import save_hpke_keystore, save_plain_account_key
from shardkey.policy.geo import degrees_to_e6

SUBFOLDERS = ("keys", "kos", "holders", "repairer", "logs", "requests")
USER_ACCOUNTS = ("admin", "owner", "requester", "client-rep", "provider-rep", "attestor", "outsider")
FUNDING_WEI = 10_000 * 10**18


def _write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode(), mode=mode)


def _toml(values: dict[str, Any]) -> bytes:
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{key} = {value}")
        elif isinstance(value, list):
            lines.append(f"{key} = {json.dumps([str(v) for v in value])}")
        else:
            lines.append(f"{key} = {json.dumps(str(value))}")
    return ("\n".join(lines) + "\n").encode()


def _is_up(info: DevnetInfo) -> bool:
    return is_running(int(info.data["anvil"]["pid"]))


def up(home: Path, holders: int = 5, block_time: float = 0.5, confirmations: int = 1,
       hpke_suite: HpkeSuiteId = DEFAULT_SUITE, repairer: bool = True, kos_members: int = DEFAULT_MEMBERS,
       kos_threshold: int | None = None) -> DevnetInfo:
    """Start a devnet in ``home``, or bring back the members of the running one that died.

    The names brought back are in ``info.data["revived"]`` (not saved). KOS and holder HPKE
    keys are made in ``hpke_suite`` (hybrid ML-KEM-768+X25519 by default).
    """
    home = Path(home).resolve()
    existing = DevnetInfo.load(home)
    if existing is not None and _is_up(existing):
        revived = revive(home, existing.data, service_env())
        return DevnetInfo(home, {**existing.data, "revived": revived})
    if existing is not None:
        raise chain_lost(home, int(existing.data["anvil"]["pid"]))
    if not 1 <= holders <= 200:
        raise DevnetError(f"--holders must be between 1 and 200, got {holders}")
    committee = (kos_members, check_committee(kos_members, kos_threshold))
    for sub in SUBFOLDERS:
        shutil.rmtree(home / sub, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    for sub in SUBFOLDERS:  # secrets inside: owner only
        (home / sub).mkdir(mode=0o700, exist_ok=True)
    started: list[int] = []
    try:
        return _start(home, holders, block_time, confirmations, started, hpke_suite, repairer, committee)
    except BaseException:
        for pid in reversed(started):
            stop(pid)
        (home / "devnet.json").unlink(missing_ok=True)
        raise


def _start(home: Path, holders: int, block_time: float, confirmations: int, started: list[int],
           hpke_suite: HpkeSuiteId, repairer: bool, committee: tuple[int, int]) -> DevnetInfo:
    # The fork server imports the agents' code while anvil starts and the contracts deploy.
    spawner = Spawner(home / "logs" / "spawner.log", service_env())
    try:
        return _start_with(spawner, home, holders, block_time, confirmations, started, hpke_suite,
                           repairer, committee)
    finally:
        spawner.close()


def _start_with(spawner: Spawner, home: Path, holders: int, block_time: float, confirmations: int,
                started: list[int], hpke_suite: HpkeSuiteId, repairer: bool,
                committee: tuple[int, int]) -> DevnetInfo:
    anvil_log = home / "logs" / "anvil.log"
    anvil_pid, rpc_url = start_anvil(anvil_log, block_time=block_time)
    started.append(anvil_pid)
    client = ChainClient(rpc_url)

    names = list(USER_ACCOUNTS) + (["repairer"] if repairer else []) + \
        member_names(committee[0]) + [f"holder-{i + 1}" for i in range(holders)]
    accounts: dict[str, LocalAccount] = {name: Account.create() for name in names}
    account_entries: dict[str, dict[str, str]] = {}
    for name, account in accounts.items():
        client.raw("anvil_setBalance", [account.address, hex(FUNDING_WEI)])
        key_file = home / "keys" / f"{name}.key"
        save_plain_account_key(key_file, account)
        account_entries[name] = {"address": account.address, "key_file": str(key_file)}

    deployment = deploy_all(client, accounts["admin"])
    deployment_path = home / "deployment.json"
    _write_json(deployment_path, deployment.to_json())
    chain = ShardKeyChain(deployment, client)

    # Agents poll the chain; 50 of them polling every 0.25 s saturate a small machine, so
    # larger devnets poll less often (docs/PERFORMANCE.md).
    poll_interval = min(block_time, max(0.25, holders * 0.02))
    member_entries = setup_members(home, client, deployment.kos_committee, accounts["admin"], accounts,
                                   member_names(committee[0]), committee[1], hpke_suite, _toml, {
                                       "deployment": deployment_path, "confirmations": confirmations,
                                       "poll_interval": min(0.25, block_time)})
    # A member needs no holder to start: its start-up (imports, keystore) overlaps with the
    # holders' registration below.
    for entry in member_entries:
        entry["pid"] = spawner.spawn("kos", Path(entry["config"]), Path(entry["log"]))
        started.append(entry["pid"])

    ports = free_ports(holders)

    def setup_holder(i: int) -> dict[str, Any]:
        """Keys, registration and activation of one holder, then start its agent."""
        name = f"holder-{i + 1}"
        region, lat, lon = region_for(i)
        data_dir = home / "holders" / name
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # keys and shards: owner only
        hpke_key = HpkePrivateKey.generate(os.urandom, hpke_suite)
        secret = os.urandom(24).hex()
        atomic_write_bytes(data_dir / "passphrase", secret.encode(), mode=0o600)
        save_hpke_keystore(data_dir / "hpke.json", hpke_key, secret)
        port = ports[i]
        endpoint = f"http://127.0.0.1:{port}"
        chain.holders.register(accounts[name], hpke_key.public_key_bytes(), endpoint, region,
                               degrees_to_e6(lat, "lat"), degrees_to_e6(lon, "lon"))
        chain.holders.activate(accounts["admin"], accounts[name].address)
        config = data_dir / "holder.toml"
        atomic_write_bytes(config, _toml({
            "deployment": deployment_path, "account_key": home / "keys" / f"{name}.key",
            "hpke_keystore": data_dir / "hpke.json", "passphrase_file": data_dir / "passphrase",
            "data_dir": data_dir / "store", "listen_host": "127.0.0.1", "listen_port": port,
            "confirmations": confirmations, "poll_interval": poll_interval}), mode=0o600)
        entry: dict[str, Any] = {
            "name": name, "address": accounts[name].address, "endpoint": endpoint, "region": region,
            "lat": lat, "lon": lon, "data_dir": str(data_dir), "config": str(config),
            "log": str(home / "logs" / f"{name}.log")}
        entry["pid"] = spawner.spawn("holder_agent", config, Path(entry["log"]))
        started.append(entry["pid"])
        return entry

    # Holders are set up concurrently (scrypt keystores and transaction round trips
    # overlap; each agent starts as soon as it is registered). Order is kept.
    with ThreadPoolExecutor(max_workers=min(8, holders)) as pool:
        holder_entries = list(pool.map(setup_holder, range(holders)))

    repairer_entry = None
    if repairer:  # after the holders: it looks at their status from its first poll
        chain.holders.grant_repairer_role(accounts["admin"], accounts["repairer"].address)
        repairer_entry = _repairer_entry(home, deployment_path, accounts["repairer"].address, confirmations,
                                         min(0.25, block_time))
        repairer_entry["pid"] = spawner.spawn("repairer", Path(repairer_entry["config"]),
                                              Path(repairer_entry["log"]))
        started.append(repairer_entry["pid"])
    for entry in [*holder_entries, *member_entries,
                  *([repairer_entry] if repairer_entry else [])]:
        wait_ready(entry)

    info = {"home": str(home), "rpc_url": rpc_url, "chain_id": client.chain_id,
            "deployment": str(deployment_path), "contracts": deployment.addresses,
            "confirmations": confirmations, "block_time": block_time,
            "anvil": {"pid": anvil_pid, "log": str(anvil_log)},
            "accounts": account_entries, "kos_members": member_entries,
            "kos_threshold": committee[1], "holders": holder_entries,
            "repairer": repairer_entry, "started_at": int(time.time())}
    _write_json(home / "devnet.json", info, mode=0o600)
    return DevnetInfo(home, info)


def _repairer_entry(home: Path, deployment_path: Path, address: str, confirmations: int,
                    poll_interval: float) -> dict[str, Any]:
    """The repair service's settings file (HOME/repairer/repairer.toml) and devnet entry."""
    folder = home / "repairer"
    port = free_ports(1)[0]
    config = folder / "repairer.toml"
    atomic_write_bytes(config, _toml({
        "deployment": deployment_path, "account_key": home / "keys" / "repairer.key",
        "state_dir": folder / "state", "confirmations": confirmations, "poll_interval": poll_interval,
        "scan_interval": 10, "metrics_port": port}), mode=0o600)
    return {"name": "repairer", "module": "repairer", "address": address, "config": str(config),
            "state_dir": str(folder / "state"), "metrics_url": f"http://127.0.0.1:{port}",
            "log": str(home / "logs" / "repairer.log")}


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open at once while chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]




def down(home: Path) -> list[str]:
    """Stop every process of the devnet in ``home``; return the names stopped."""
    info = DevnetInfo.load(Path(home).resolve())
    if info is None:
        return []
    stopped = []
    for entry in info.services():
        if "pid" in entry and stop(int(entry["pid"])):
            stopped.append(entry["name"])
    if stop(int(info.data["anvil"]["pid"])):
        stopped.append("anvil")
    with contextlib.suppress(FileNotFoundError):
        (info.home / "devnet.json").rename(info.home / "devnet.stopped.json")
    return stopped


def status(home: Path) -> list[dict[str, Any]]:
    """One row per devnet process: name, pid, running, endpoint."""
    info = DevnetInfo.load(Path(home).resolve())
    if info is None:
        return []
    rows = [{"name": "anvil", "pid": info.data["anvil"]["pid"],
             "running": is_running(int(info.data["anvil"]["pid"])), "endpoint": info.rpc_url}]
    for entry in info.services():
        rows.append({"name": entry["name"], "pid": entry.get("pid"),
                     "running": bool(entry.get("pid")) and is_running(int(entry["pid"])),
                     "endpoint": entry.get("endpoint", entry.get("metrics_url", ""))})
    return rows
