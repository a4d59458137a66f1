"""The repair service: settings, account, the event watcher and the poll loop.

Each poll (every ``poll_interval`` seconds):

1. the watcher hands confirmed events to the handlers: a holder leaving or failing
   (``HolderExiting``, ``HolderFailed``, ``HolderRetired``) calls for a full scan; a shard
   or dataset event (``ShardReleased``, ``ShardIntegrityFailureProven``,
   ``DatasetActivated``, ``ShardRepaired``) marks its dataset to be looked at;
2. every ``scan_interval`` seconds (and at start) every Active dataset is looked at, so
   nothing is lost to a missed event or a restart; otherwise only the marked ones. The
   datasets ever activated are read from the chain's history at the first scan only, and
   kept up from the watcher's ``DatasetActivated`` events after;
3. a dataset that is due (:func:`shardkey.client.repair_need.assess`) is repaired with
   :class:`shardkey.client.repair.Repairer`; a failure is one WARNING line, and that
   dataset is tried again after a back-off of its own (the service goes on);
4. ``state_dir/heartbeat.json`` is rewritten and the gauges are set.

A dataset whose fragment holders include a non-Active holder is logged once (until its
set changes) and counted in ``shardkey_repairer_redeal_needed``: the owner must run
``shardkey redeal``. SIGTERM and SIGINT stop the service after the shard under way; the exit
code is 0. Start-up (deployment, key, chain id, REPAIRER_ROLE, funds) is
:mod:`shardkey.service.startup`'s; its errors carry the exit codes of
:mod:`shardkey.service.exits`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from pathlib import Path

from eth_account.signers.local import LocalAccount

from repairer.settings import RepairerSettings, load
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.errors import ChainError, UndecodableLog
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import HolderInfo
from shardkey.chain.watcher import EventWatcher
from shardkey.client.repair import Repairer
from shardkey.client.repair_history import DatasetHistories
from shardkey.client.repair_need import RepairNeed, assess
from shardkey.errors import ShardKeyError
from shardkey.service.exits import ServiceExit
from shardkey.service.health import WatchHealth, judge, watcher_lag
from shardkey.service.heartbeat import write_heartbeat
from shardkey.service.logs import configure_logging
from shardkey.service.loop import Backoff, poll_loop, proportional_jitter, stop_on_signals
from shardkey.service.metrics import RepairerMetrics
from shardkey.service.monitor import run_monitored
from shardkey.service.startup import AccountNode, IdentityCheck, start_account_node

log = logging.getLogger("repairer.service")

PASSPHRASE_ENV = "SHARDKEY_REPAIRER_PASSPHRASE"  # noqa: S105 - a variable name
HOLDER_EVENTS = ("HolderExiting", "HolderFailed", "HolderRetired")
DATASET_EVENTS = ("ShardReleased", "ShardIntegrityFailureProven", "DatasetActivated", "ShardRepaired")
RETRY_CAP = 10.0  # longest wait between two failing polls (seconds)


def _hex(dataset_id: bytes) -> str:
    return "0x" + dataset_id.hex()


class RepairService:
    """Watcher + due rule + repairer + heartbeat."""

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, state_dir: Path, *,
                 confirmations: int = 1, repair_margin: int = 1, same_region: bool = False,
                 scan_interval: float = 60.0, retry: Backoff | None = None,
                 health: WatchHealth | None = None) -> None:
        self.chain, self.account = chain, account
        self.metrics = RepairerMetrics()
        self.health = health or WatchHealth()
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.repair_margin, self.scan_interval = repair_margin, scan_interval
        self.retry = retry or Backoff(base=2.0, cap=300.0, jitter=proportional_jitter(random.random))
        self.stop = threading.Event()
        self.repairer = Repairer(chain, account, same_region, stop=self.stop)
        self.watcher = EventWatcher(chain.client, chain.contracts, self.state_dir / "cursor.json",
                                    start_block=chain.deployment.start_block, confirmations=confirmations)
        for name in HOLDER_EVENTS:
            self.watcher.on(name, self._on_holder_event)
        for name in DATASET_EVENTS:
            self.watcher.on(name, self._on_dataset_event)
        self.metrics.count_handlers(self.watcher)
        self.marked: set[bytes] = set()
        self.needs: dict[bytes, RepairNeed] = {}
        self.failures: dict[bytes, tuple[int, float]] = {}  # dataset -> (failures in a row, retry at)
        self._redeal_logged: dict[bytes, tuple[str, ...]] = {}
        self._scan_wanted = True
        self._scanned_at = float("-inf")
        # Every dataset ever activated, in activation order: read from the history once (the
        # first full scan), then kept up by the watcher's DatasetActivated events. A full scan
        # that re-read the history cost a hosted provider its whole log range every
        # scan_interval (hundreds of capped eth_getLogs on a long-lived testnet).
        self._activated: dict[bytes, None] | None = None
        # Each dataset's history read once; after that every dataset's new blocks together,
        # once per poll (shardkey/client/repair_history.py).
        self.histories = DatasetHistories(chain, confirmations)
        self.last_block = 0

    # --- events -------------------------------------------------------------------

    def _on_holder_event(self, event: ChainEvent) -> None:
        self._scan_wanted = True  # every dataset with a shard or fragment there may be due
        log.info("holder status changed", extra={"fields": {"event": event.name,
                                                            "holder": event.args["holder"]}})

    def _on_dataset_event(self, event: ChainEvent) -> None:
        dataset_id = bytes(event.args["datasetId"])
        self.marked.add(dataset_id)
        if event.name == "DatasetActivated" and self._activated is not None:
            self._activated[dataset_id] = None

    # --- one poll -----------------------------------------------------------------

    def poll(self) -> int:
        """Handle new confirmed events, look at the datasets that may be due, repair them;
        return how many shards were repaired."""
        error: str | None = None
        repaired = 0
        try:
            try:
                self.watcher.poll_once()
                head = self.watcher.head
            except ChainError as exc:
                self.metrics.rpc_errors.labels(kind=type(exc).__name__).inc()
                raise
            self.last_block = head
            now = time.monotonic()
            full = self._scan_wanted or now - self._scanned_at >= self.scan_interval
            candidates = self._active_datasets() if full else sorted(self.marked)
            # read only when there is something to look at (most polls have nothing)
            holders = self.chain.holders.every_holder() if candidates else {}
            if candidates:
                self.histories.refresh()  # every dataset's new repair events, in six queries
            still: set[bytes] = set()
            for dataset_id in candidates:
                if self.stop.is_set():
                    still.update(candidates)  # looked at again after a restart's first scan
                    break
                repaired += self._look_at(dataset_id, holders, now, still)
            self.marked = still | (self.marked - set(candidates))
            if full and not self.stop.is_set():
                self._scan_wanted, self._scanned_at = False, now
                self.metrics.last_pass_block.set(head)
            self._set_gauges()
            self.health.poll_succeeded(time.monotonic())
            self.metrics.polls.inc()
            self.metrics.watcher_lag.set(watcher_lag(head, self.watcher.confirmations,
                                                     self.watcher.cursor.block))
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            self.write_heartbeat(error)
        return repaired

    def _active_datasets(self) -> list[bytes]:
        """Every dataset ever activated (assess skips those no longer Active); the history is
        read at the first call only (it covers the head, the watcher what comes after)."""
        if self._activated is None:
            start = self.chain.deployment.start_block
            logs = self.chain.datasets.contract.get_logs("DatasetActivated", start)
            self._activated = dict.fromkeys(bytes(e.args["datasetId"]) for e in logs)
        return list(self._activated)

    def _look_at(self, dataset_id: bytes, holders: dict[str, HolderInfo], now: float,
                 still: set[bytes]) -> int:
        need = assess(self.chain, dataset_id, holders, self.repair_margin, self.histories)
        self.needs[dataset_id] = need
        self._report_redeal(need)
        if not need.due:
            self.failures.pop(dataset_id, None)
            return 0
        still.add(dataset_id)  # looked at again next poll: repaired by then, or retried later
        failures, retry_at = self.failures.get(dataset_id, (0, 0.0))
        if now < retry_at:
            return 0
        return self._repair(dataset_id, need, failures)

    def _repair(self, dataset_id: bytes, need: RepairNeed, failures: int) -> int:
        log.info("repairing", extra={"fields": {"dataset": _hex(dataset_id), "shards": list(need.due_shards),
                                                "stripes_at_risk": need.stripes_at_risk}})
        try:
            result = self.repairer.repair(dataset_id)
        except ShardKeyError as exc:
            self._failed(dataset_id, failures, type(exc).__name__, str(exc))
            return 0
        done = sum(s.state == "repaired" for s in result.shards)
        self.metrics.shards_repaired.inc(done)
        if result.refused:
            self._failed(dataset_id, failures, "RepairError", result.refused[0].detail)
        else:
            self.failures.pop(dataset_id, None)
        log.info("dataset repaired", extra={"fields": {
            "dataset": _hex(dataset_id), "repaired": done, "refused": len(result.refused),
            "bytes_read": result.bytes_read, "bytes_written": result.bytes_written,
            "seconds": round(result.seconds, 3)}})
        return done

    def _failed(self, dataset_id: bytes, failures: int, kind: str, detail: str) -> None:
        failures += 1
        delay = self.retry.delay(failures)
        self.failures[dataset_id] = (failures, time.monotonic() + delay)
        self.metrics.repair_failures.inc()
        log.warning("repair failed; retrying later", extra={"fields": {
            "dataset": _hex(dataset_id), "error": kind, "detail": " ".join(detail.split()),
            "failures": failures, "retry_in": round(delay, 3)}})

    def _report_redeal(self, need: RepairNeed) -> None:
        if not need.redeal_holders:
            self._redeal_logged.pop(need.dataset_id, None)
            return
        if self._redeal_logged.get(need.dataset_id) != need.redeal_holders:
            self._redeal_logged[need.dataset_id] = need.redeal_holders
            log.warning("fragments need a re-deal by the owner", extra={"fields": {
                "dataset": _hex(need.dataset_id), "holders": list(need.redeal_holders),
                "run": f"shardkey redeal {_hex(need.dataset_id)} (as the dataset's owner)"}})

    def _set_gauges(self) -> None:
        needs = list(self.needs.values())
        self.metrics.datasets_due.set(sum(n.due for n in needs))
        self.metrics.stripes_at_risk.set(sum(n.stripes_at_risk for n in needs))
        self.metrics.redeal_needed.set(sum(bool(n.redeal_holders) for n in needs))

    # --- health, heartbeat, loop --------------------------------------------------

    def health_status(self) -> tuple[bool, dict[str, object]]:
        """The health verdict and body of ``/health`` (reads the chain head; blocking)."""
        verdict = judge(self.health, self.chain.client.block_number, self.watcher.confirmations,
                        self.watcher.cursor.block, time.monotonic())
        self.metrics.watcher_lag.set(verdict.lag_blocks)
        return verdict.healthy, {**verdict.as_json(), "account": self.account.address,
                                 "chain_id": self.chain.client.chain_id,
                                 "datasets_due": sum(n.due for n in self.needs.values())}

    def write_heartbeat(self, error: str | None = None) -> None:
        """``state_dir/heartbeat.json``, atomically, 0600 (not fsynced: rewritten every poll)."""
        write_heartbeat(self.state_dir, self.account.address, self.watcher.cursor.block, error,
                        block=self.last_block, datasets_due=sum(n.due for n in self.needs.values()))

    def run(self, interval: float) -> None:
        """Poll until :attr:`stop` is set; a failing poll is logged and retried with back-off.

        An undecodable log from a watched contract stops the service (it would be skipped
        otherwise, and a release with it).
        """
        backoff = Backoff(base=2 * interval, cap=max(RETRY_CAP, 2 * interval),
                          jitter=proportional_jitter(random.random))
        self.health.started(time.monotonic())
        try:
            poll_loop(self.poll, self.stop, lambda: interval, backoff, log, fatal=(UndecodableLog,))
        finally:
            self.repairer.close()


# --- process wiring ----------------------------------------------------------------


def _role_problem(node: AccountNode) -> str | None:
    me = node.account.address
    if node.chain.holders.is_repairer(me):
        return None
    return f"account {me} does not hold REPAIRER_ROLE on the HolderRegistry"


REPAIRER_CHECKS: tuple[IdentityCheck[AccountNode], ...] = (
    IdentityCheck("repairer role", _role_problem,
                  "the HolderRegistry's admin runs `shardkey repairer role grant <address>`"),
)


def build(settings: RepairerSettings) -> RepairService:
    """Start-up checks (deployment, key, chain id, REPAIRER_ROLE, funds), then the service."""
    node = start_account_node(settings, PASSPHRASE_ENV, REPAIRER_CHECKS)
    retry = Backoff(base=min(2 * settings.poll_interval, settings.retry_cap), cap=settings.retry_cap,
                    jitter=proportional_jitter(random.random))
    return RepairService(node.chain, node.account, settings.state_dir, confirmations=node.confirmations,
                         repair_margin=settings.repair_margin, same_region=settings.same_region,
                         scan_interval=settings.scan_interval, retry=retry,
                         health=WatchHealth(settings.health_max_poll_age, settings.health_max_lag_blocks))


def run(config_path: Path) -> int:
    """Run the service until SIGTERM/SIGINT; return the exit code (0 on a clean stop).

    With ``metrics_port`` set, its socket is bound first (a taken port: exit code 4) and
    serves ``/health`` and ``/metrics`` while the service runs.
    """
    settings = load(config_path)
    configure_logging(settings.log_level)
    return run_monitored(settings.metrics_host, settings.metrics_port, lambda: build(settings),
                         lambda service: _run_service(service, settings))


def _run_service(service: RepairService, settings: RepairerSettings) -> int:
    stop_on_signals(service.stop, log)
    log.info("repair service started", extra={"fields": {
        "account": service.account.address, "confirmations": service.watcher.confirmations,
        "repair_margin": service.repair_margin, "scan_interval": service.scan_interval,
        "cursor_block": service.watcher.cursor.block}})
    service.run(settings.poll_interval)
    log.info("repair service stopped")
    return int(ServiceExit.OK)
