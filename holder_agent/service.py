"""Wiring of the holder agent: settings, keys, chain, storage, watcher thread, HTTP server.

``run(config_path)`` serves until SIGTERM or SIGINT, then stops the HTTP server and the
watcher thread and returns normally (exit status 0).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from eth_account.signers.local import LocalAccount

from holder_agent.api import ApiContext, create_app
from holder_agent.auth import ChainTime
from holder_agent.errors import HolderError
from holder_agent.handlers import Handlers
from holder_agent.logs import setup_logging
from holder_agent.settings import HolderSettings
from holder_agent.storage import Store
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.deployment import Deployment
from shardkey.chain.watcher import EventWatcher
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.httpauth import NonceCache
from shardkey.keys import load_account_file, load_hpke_keystore, read_passphrase
from shardkey.ratelimit import RateLimiter
from shardkey.settings import load_settings

log = logging.getLogger(__name__)

GC_INTERVAL = 60.0
# After a bundle is staged a registration naming this holder usually follows within a
# block or two: poll this often for this long, so custody is confirmed as soon as the
# registration is deep enough, without polling that fast when nothing is expected.
EXPECTING_POLL = 0.05
EXPECTING_WINDOW = 5.0
PASSPHRASE_ENV = "SHARDKEY_HOLDER_PASSPHRASE"  # noqa: S105 - a variable name


@dataclass
class Agent:
    """Every long-lived part of one holder agent."""

    settings: HolderSettings
    chain: ShardKeyChain
    store: Store
    handlers: Handlers
    watcher: EventWatcher
    api: ApiContext

    def poll(self) -> None:
        """One round: handle confirmed events, retry incomplete custody and deferred deliveries."""
        self.watcher.poll_once()
        self.handlers.retry_pending()
        self.handlers.retry_deferred()

    def gc(self) -> None:
        """Delete staged uploads no registration claimed within ``staging_ttl``."""
        removed = self.store.gc_staging(self.settings.staging_ttl, time.time(),
                                        keep=self.handlers.pending_staging())
        for name in removed:
            log.info("unclaimed staging deleted", extra={"fields": {"staging": name}})

    def watch(self, stop: threading.Event) -> None:
        """Poll and collect garbage until ``stop`` is set; failures are logged and retried."""
        last_gc = 0.0
        while not stop.is_set():
            try:
                self.poll()
                if time.monotonic() - last_gc > GC_INTERVAL:
                    self.gc()
                    last_gc = time.monotonic()
            except Exception:
                log.exception("chain poll failed; retrying")
                stop.wait(min(5.0, self.settings.poll_interval * 8))
                continue
            stop.wait(self.poll_interval())

    def poll_interval(self) -> float:
        """Seconds until the next poll: short while a registration is expected."""
        if time.monotonic() - self.store.bundle_staged_at < EXPECTING_WINDOW:
            return min(self.settings.poll_interval, EXPECTING_POLL)
        return self.settings.poll_interval


def build_agent(settings: HolderSettings) -> Agent:
    """Load keys, connect to the chain, check the on-chain registration, assemble."""
    deployment = Deployment.load(settings.deployment)
    if settings.rpc_url:
        deployment = dataclasses.replace(deployment, rpc_url=settings.rpc_url)

    def passphrase() -> str:
        return read_passphrase(str(settings.passphrase_file) if settings.passphrase_file else None,
                               PASSPHRASE_ENV)

    account = load_account_file(settings.account_key, passphrase)
    hpke_key = load_hpke_keystore(settings.hpke_keystore, passphrase())
    chain = ShardKeyChain(deployment)
    if chain.client.chain_id != deployment.chain_id:
        raise HolderError(f"{settings.deployment}: chain id {deployment.chain_id}, but the RPC "
                          f"endpoint serves chain {chain.client.chain_id}")
    registered = chain.holders.holder(account.address)
    if registered.hpke_public_key != hpke_key.public_key_bytes():
        raise HolderError(f"holder {account.address}: the HPKE key registered on chain is not the "
                          f"one in {settings.hpke_keystore} (register or updateHolder first)")
    log.info("holder agent starting", extra={"fields": {
        "address": account.address, "chain_id": deployment.chain_id,
        "status": registered.status.name, "data_dir": str(settings.data_dir)}})
    return assemble_agent(settings, chain, account, hpke_key)


def assemble_agent(settings: HolderSettings, chain: ShardKeyChain, account: LocalAccount,
                   hpke_key: HpkePrivateKey) -> Agent:
    """Wire storage, handlers, watcher and API context around loaded keys and a chain."""
    start_block = chain.deployment.start_block
    store = Store(settings.data_dir, settings.quota_bytes, settings.staging_total_bytes,
                  settings.staging_min_charge)
    handlers = Handlers(chain, account, hpke_key, store, start_block,
                        pending_blocks=settings.pending_custody_blocks,
                        deliveries=RateLimiter(settings.delivery_rate_limit, settings.delivery_rate_window))
    watcher = EventWatcher(chain.client, chain.contracts, settings.data_dir / "cursor.json",
                           start_block=start_block, confirmations=settings.confirmations)
    handlers.attach(watcher)
    api = ApiContext(chain=chain, account=account, store=store, clock=ChainTime(chain.client),
                     nonces=NonceCache(), max_body_bytes=settings.max_body_bytes)
    return Agent(settings, chain, store, handlers, watcher, api)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: :func:`run` owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(config_path: Path) -> int:
    """Run the agent until SIGTERM/SIGINT; return the exit status."""
    settings = load_settings(HolderSettings, config_path)
    setup_logging(settings.log_level)
    agent = build_agent(settings)
    stop = threading.Event()
    config = uvicorn.Config(create_app(agent.api), host=settings.listen_host,
                            port=settings.listen_port, log_config=None, access_log=True,
                            lifespan="off", timeout_graceful_shutdown=5)
    server = _Server(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()
        server.should_exit = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    watcher = threading.Thread(target=agent.watch, args=(stop,), name="holder-watcher", daemon=True)
    watcher.start()
    try:
        server.run()
    finally:
        stop.set()
        watcher.join(timeout=30)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        log.error("HTTP server did not start",
                  extra={"fields": {"host": settings.listen_host, "port": settings.listen_port}})
        return 1
    log.info("stopped")
    return 0
