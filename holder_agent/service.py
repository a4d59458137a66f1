"""Wiring of the holder agent: settings, keys, chain, storage, watcher thread, HTTP server.

``run(config_path)`` serves until SIGTERM or SIGINT, then stops the HTTP server and the
watcher thread and returns 0. Start-up failures raise errors carrying the service exit
codes of :mod:`shardkey.service.exits` (2 configuration, 3 chain identity, 4 port).
"""

from __future__ import annotations

import logging
import random
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import uvicorn
from eth_account.signers.local import LocalAccount

from holder_agent.api import create_app
from holder_agent.context import HEAD_MAX_AGE, ApiContext
from holder_agent.dataplane import DataPlane
from holder_agent.expectations import paced
from holder_agent.handlers import Handlers
from holder_agent.leaving import Leaving
from holder_agent.settings import HolderSettings
from holder_agent.storage import Store
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime, block_interval
from shardkey.chain.errors import TransactionReverted
from shardkey.chain.model import HolderStatus
from shardkey.chain.watcher import EventWatcher
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.directfile import UPLOAD_BUFFERS
from shardkey.heap import freeze_long_lived
from shardkey.httpauth import NonceCache
from shardkey.ratelimit import RateLimiter
from shardkey.service.exits import ServiceExit
from shardkey.service.health import WatchHealth
from shardkey.service.heartbeat import write_heartbeat
from shardkey.service.listen import bind_listener
from shardkey.service.logs import configure_logging
from shardkey.service.loop import Backoff, poll_loop, proportional_jitter
from shardkey.service.metrics import HolderMetrics
from shardkey.service.monitor import QuietServer
from shardkey.service.startup import IdentityCheck, Node, start_node
from shardkey.settings import load_settings, resolve_confirmations

log = logging.getLogger(__name__)

GC_INTERVAL = 60.0
PASSPHRASE_ENV = "SHARDKEY_HOLDER_PASSPHRASE"  # noqa: S105 - a variable name
RETRY_CAP = 5.0  # longest wait between two failing polls (seconds)
DATAPLANE_BACKLOG = 1024  # pending connections on the public port


@dataclass
class Agent:
    """Every long-lived part of one holder agent."""

    settings: HolderSettings
    chain: ShardKeyChain
    store: Store
    handlers: Handlers
    watcher: EventWatcher
    api: ApiContext
    leaving: Leaving
    _last_gc: float = field(default=0.0, init=False)

    def poll(self) -> None:
        """One round: handle confirmed events, retry incomplete custody, deferred deliveries and
        committee requests waiting for shares."""
        self.watcher.poll_once()
        self.handlers.retry_pending()
        self.handlers.retry_deferred()
        self.handlers.retry_committee()  # committee requests still waiting for member shares
        self.leaving.check()  # Exiting/Failed: refuse uploads, retire once nothing is held
        self.api.health.poll_succeeded(time.monotonic())
        # `holder status` reads this: the cursor file is saved only every few seconds when idle
        write_heartbeat(self.settings.data_dir, self.handlers.address, self.watcher.cursor.block)

    def gc(self) -> None:
        """Delete staged uploads no registration claimed within ``staging_ttl``."""
        removed = self.store.gc_staging(self.settings.staging_ttl, time.time(),
                                        keep=self.handlers.pending_staging())
        for name in removed:
            log.info("unclaimed staging deleted", extra={"fields": {"staging": name}})

    def tick(self) -> None:
        """One poll, then garbage collection when ``GC_INTERVAL`` has passed since the last."""
        self.poll()
        if time.monotonic() - self._last_gc > GC_INTERVAL:
            self.gc()
            self._last_gc = time.monotonic()

    def watch(self, stop: threading.Event) -> None:
        """Poll and collect garbage until ``stop`` is set; failures back off (shared loop)."""
        backoff = Backoff(base=self.settings.poll_interval, cap=max(RETRY_CAP, self.settings.poll_interval),
                          jitter=proportional_jitter(random.random))
        self.api.health.started(time.monotonic())
        poll_loop(self.api.metrics.counted_poll(self.tick), stop, self.poll_interval, backoff, log,
                  what="chain poll", wait=self.store.expected.sleep)

    def halt(self, stop: threading.Event) -> None:
        """Make :meth:`watch` return: ``stop``, and its wait cut short."""
        stop.set()
        self.store.expected.interrupt()

    def poll_interval(self) -> float:
        """Seconds until the next poll: short while a registration or a token is expected
        (:mod:`holder_agent.expectations`)."""
        if self.store.expected.pending():
            return min(self.settings.poll_interval, self.store.expected.poll)
        return self.settings.poll_interval


def _registration_problem(node: Node) -> str | None:
    unregistered = f"holder {node.account.address} is not registered in the HolderRegistry"
    try:
        registered = node.chain.holders.holder(node.account.address)
    except TransactionReverted as exc:
        if exc.error == "HolderNotRegistered":
            return unregistered
        raise
    if registered.status is HolderStatus.NONE:
        return unregistered
    if registered.hpke_public_key != node.hpke_key.public_key_bytes():
        return (f"holder {node.account.address}: the HPKE key registered on chain is not the one "
                "in hpke_keystore")
    return None


HOLDER_CHECKS = (
    IdentityCheck("holder registration", _registration_problem,
                  "run `shardkey holder register --config <this file> ...` (then the admin runs "
                  "`shardkey holder activate <address>`), or `shardkey holder update --config "
                  "<this file>` to put this keystore's key on chain"),
)


def build_agent(settings: HolderSettings) -> Agent:
    """Load keys, connect to the chain, check the on-chain registration, assemble."""
    node = start_node(settings, PASSPHRASE_ENV, HOLDER_CHECKS)
    registered = node.chain.holders.holder(node.account.address)
    if registered.status is HolderStatus.PENDING:
        log.warning("holder registered but not active: no new dataset places it until the admin "
                    "runs `shardkey holder activate`", extra={"fields": {"address": node.account.address}})
    log.info("holder agent starting", extra={"fields": {
        "address": node.account.address, "chain_id": node.deployment.chain_id,
        "status": registered.status.name, "confirmations": node.confirmations,
        "data_dir": str(settings.data_dir)}})
    return assemble_agent(settings, node.chain, node.account, node.hpke_key)


def assemble_agent(settings: HolderSettings, chain: ShardKeyChain, account: LocalAccount,
                   hpke_key: HpkePrivateKey) -> Agent:
    """Wire storage, handlers, watcher and API context around loaded keys and a chain."""
    start_block = chain.deployment.start_block
    store = Store(settings.data_dir, settings.quota_bytes, settings.staging_total_bytes,
                  settings.staging_min_charge, capacity_bytes=settings.capacity_bytes,
                  reserve_free_bytes=settings.reserve_free_bytes, drop_cache=settings.drop_cache)
    metrics = HolderMetrics()
    handlers = Handlers(chain, account, hpke_key, store, start_block,
                        pending_blocks=settings.pending_custody_blocks,
                        deliveries=RateLimiter(settings.delivery_rate_limit, settings.delivery_rate_window),
                        max_deferred=settings.max_deferred_deliveries,
                        on_delivered=metrics.deliveries.inc)
    confirmations = resolve_confirmations(settings.confirmations, chain.deployment.chain_id)
    watcher = EventWatcher(chain.client, chain.contracts, settings.data_dir / "cursor.json",
                           start_block=start_block, confirmations=confirmations)
    interval = block_interval(chain.client)
    store.expected.poll, store.expected.window = paced(interval, confirmations)
    log.info("polls while an event is expected", extra={"fields": {
        "block_interval_s": round(interval, 2), "poll_s": store.expected.poll,
        "window_s": store.expected.window}})
    handlers.attach(watcher)
    metrics.count_handlers(watcher)
    api = ApiContext(chain=chain, account=account, store=store,
                     clock=ChainTime.of(chain.client, HEAD_MAX_AGE),
                     nonces=NonceCache(), max_body_bytes=settings.max_body_bytes, metrics=metrics,
                     health=WatchHealth(settings.health_max_poll_age, settings.health_max_lag_blocks),
                     confirmations=confirmations, cursor_block=lambda: watcher.cursor.block)
    api.leaving = Leaving(chain, account, store)
    handlers.on_custody = api.placements.remember
    return Agent(settings, chain, store, handlers, watcher, api, api.leaving)


def run(config_path: Path) -> int:
    """Run the agent until SIGTERM/SIGINT; return the exit status (0 after a clean stop).

    The listening socket is bound before keys are unlocked or the chain is read, so a taken
    port fails fast with :class:`~shardkey.service.exits.BindError` (exit code 4).
    """
    settings = load_settings(HolderSettings, config_path)
    configure_logging(settings.log_level)
    listener = bind_listener(settings.listen_host, settings.listen_port)
    try:
        agent = build_agent(settings)
        if agent.store.drop_cache:  # uploads are received into staging buffers: map them once, now
            UPLOAD_BUFFERS.prefill()
        freeze_long_lived()  # built: what is alive now lives as long as the process
        return _serve(agent, settings, listener)
    finally:
        listener.close()


class QuietTransfers(logging.Filter):
    """Demote uvicorn's access line of a successful shard or bundle transfer to DEBUG.

    One INFO line per 1 MiB shard cost 5-10 % of a holder's CPU; the transfers are counted in
    /metrics instead. Refusals (4xx, 5xx) and every other route keep their INFO line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5 and isinstance(args[4], int)
                and args[4] < 400 and args[1] in ("GET", "PUT") and _is_transfer(str(args[2]))):
            return True
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _is_transfer(path: str) -> bool:
    return path.startswith(("/v1/datasets/", "/v1/repair/")) and not path.endswith("/receipts")


def _serve(agent: Agent, settings: HolderSettings, listener: socket.socket) -> int:
    stop = threading.Event()
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QuietTransfers) for f in access.filters):
        access.addFilter(QuietTransfers())
    # The public port is the data plane's; it relays what it does not take itself to the
    # application, which listens on a loopback port of its own (holder_agent/dataplane.py).
    application = bind_listener("127.0.0.1", 0)
    config = uvicorn.Config(create_app(agent.api), host="127.0.0.1",
                            port=application.getsockname()[1], log_config=None, access_log=True,
                            lifespan="off", timeout_graceful_shutdown=5, http="httptools")
    server = QuietServer(config)
    application.listen(DATAPLANE_BACKLOG)  # relayed connections wait in it until uvicorn runs
    listener.listen(DATAPLANE_BACKLOG)
    listener.setblocking(False)
    plane = DataPlane(agent.api, listener, ("127.0.0.1", application.getsockname()[1]))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        agent.halt(stop)
        server.should_exit = True
        # Requests in progress finish (5 s at most); the relayed connections then close, so
        # uvicorn's own graceful shutdown does not wait on them.
        threading.Thread(target=plane.stop, name="dataplane-stop", daemon=True).start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    watcher = threading.Thread(target=agent.watch, args=(stop,), name="holder-watcher", daemon=True)
    watcher.start()
    plane.start()
    try:
        server.run(sockets=[application])
    finally:
        agent.halt(stop)
        plane.stop()
        application.close()
        watcher.join(timeout=30)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        log.error("HTTP server did not start",
                  extra={"fields": {"host": settings.listen_host, "port": settings.listen_port}})
        return int(ServiceExit.UNEXPECTED)
    log.info("stopped")
    return int(ServiceExit.OK)
