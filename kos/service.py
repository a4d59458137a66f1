"""A KOS committee member: settings, keys, the event watcher and the poll loop.

Each poll (every ``poll_interval`` seconds):

1. the watcher hands confirmed ``RetrievalApproved`` events to a handler that adds the
   request to the persisted pending set (saved before the cursor moves past the event);
2. every pending request is settled by :class:`kos.orchestrator.Orchestrator` on a small
   thread pool (reads of one poll share a :class:`~kos.checks.PollCache`);
3. ``state_dir/heartbeat.json`` is rewritten (pid, last block seen, pending count, releases sent).

Logs are JSON lines on stderr; no wrap key, share, passphrase or key is ever logged. SIGTERM
and SIGINT stop the loop after the current poll; the exit code is 0. Start-up (deployment,
keys, chain id) is :mod:`shardkey.service.startup`'s; it then checks that the account is a
member of a committee epoch (the newest, or an older one whose datasets it still serves) with
its HPKE key registered there. A member needs no KOS_ROLE (the KosCommittee contract holds
it). Start-up errors carry the exit codes of :mod:`shardkey.service.exits`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount

from kos.checks import PollCache
from kos.errors import KosConfigError, KosError
from kos.member import CommitteeMember, ShareOpener
from kos.orchestrator import Orchestrator, Outcome
from kos.pending import PendingSet
from kos.settings import KosSettings, load
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime
from shardkey.chain.errors import ChainError, TransactionReverted, UndecodableLog
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import RequestInfo, RequestStatus
from shardkey.chain.watcher import EventWatcher
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.ratelimit import RateLimiter
from shardkey.service.exits import ServiceExit
from shardkey.service.health import WatchHealth, judge, watcher_lag
from shardkey.service.heartbeat import write_heartbeat
from shardkey.service.logs import configure_logging
from shardkey.service.loop import Backoff, poll_loop, proportional_jitter, stop_on_signals
from shardkey.service.metrics import KosMetrics
from shardkey.service.monitor import run_monitored
from shardkey.service.startup import IdentityCheck, Node, start_node

log = logging.getLogger("kos.service")

PASSPHRASE_ENV = "SHARDKEY_KOS_PASSPHRASE"  # noqa: S105 - a variable name
DEFAULT_WORKERS = 8  # the same default as KosSettings.workers
RETRY_CAP = 10.0  # longest wait between two failing polls (seconds)
R = TypeVar("R")


@dataclass
class PollReport:
    """What one poll did (heartbeat, logs, throughput measurements)."""

    block: int = 0
    chain_time: int = 0
    events: int = 0
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> int:
        """Requests that ended this poll with ``outcome``."""
        return sum(1 for o in self.outcomes.values() if o is outcome)


class KosService:
    """One committee member: watcher + pending set + orchestrator + heartbeat."""

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, key: HpkePrivateKey,
                 state_dir: Path, *, confirmations: int = 1, workers: int = DEFAULT_WORKERS,
                 receipt_wait: float = 30.0, issue_limit: RateLimiter | None = None,
                 health: WatchHealth | None = None) -> None:
        self.chain = chain
        self.metrics = KosMetrics()
        self.health = health or WatchHealth()
        self.receipt_wait = receipt_wait
        self.account = account
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.member = _member(chain, account, key)
        self.releases = 0  # releaseShares sent (the heartbeat shows it)
        self.orchestrator = Orchestrator(chain, self.member, issue_limit=issue_limit,
                                         on_release_sent=self._sent)
        self.pending = PendingSet(self.state_dir / "pending.json")
        self.watcher = EventWatcher(chain.client, chain.contracts, self.state_dir / "cursor.json",
                                    start_block=chain.deployment.start_block,
                                    confirmations=confirmations)
        self.watcher.before_save(self.pending.flush)
        self.watcher.on("RetrievalApproved", self._on_approved)
        self.watcher.on("RetrievalRequested", self.orchestrator.kap.remember_request)
        self.metrics.count_handlers(self.watcher)
        self.workers = max(1, workers)
        # Read afresh every poll (max_age 0): its timestamp is "now" for the whole poll.
        self.clock = ChainTime.of(chain.client, max_age=0.0)
        self.last_block = 0

    def _sent(self, count: int) -> None:
        self.metrics.envelopes_released.inc(count)
        self.releases += 1

    def _on_approved(self, event: ChainEvent) -> None:
        request_id = int(event.args["requestId"])
        self.pending.add(request_id)  # flushed by the watcher before it saves its cursor
        log.info("request approved", extra={"fields": {"request": request_id,
                                                       "block": event.block_number}})

    def poll(self) -> PollReport:
        """Handle new confirmed events, try every pending request once, write the heartbeat."""
        started = time.monotonic()
        report = PollReport()
        error: str | None = None
        try:
            try:
                report.events = self.watcher.poll_once()
                head = self.clock.refresh()
            except ChainError as exc:
                self.metrics.rpc_errors.labels(kind=type(exc).__name__).inc()
                raise
            report.block, report.chain_time = head.number, head.timestamp
            self.last_block = report.block
            if len(self.pending):
                report.outcomes = self._settle_pending(list(self.pending), report.block, report.chain_time)
            self.health.poll_succeeded(time.monotonic())
            self.metrics.polls.inc()
            self.metrics.watcher_lag.set(watcher_lag(report.block, self.watcher.confirmations,
                                                     self.watcher.cursor.block))
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            report.seconds = time.monotonic() - started
            self.write_heartbeat(report, error)
        return report

    def _settle_pending(self, ids: list[int], block: int, now: int) -> dict[int, Outcome]:
        """One pass over the pending requests at head ``block`` (chain time ``now``): act on
        each, wait once for the transactions sent, drop those whose settlement is deep enough.

        A request whose act was seen mined is not read again until its block is
        ``confirmations`` deep (``WAITING``); then it is confirmed (``DROPPED``) or, gone from
        the chain at that depth (a reorg), acted on again from the next poll (``RETRY``).
        """
        mined = {r for r in ids if self.orchestrator.mined_in(r) is not None}
        outcomes = self._settle_all([r for r in ids if r not in mined], now, PollCache(self.chain))
        outcomes.update(self.orchestrator.wait_in_flight(self.receipt_wait))
        depth = block - self.watcher.confirmations
        due = [r for r in [*sorted(mined), *(r for r, o in outcomes.items() if o.final)]
               if (at := self.orchestrator.mined_in(r)) is None or at <= depth]
        confirmed = set(self._confirmed(due, block))
        self.pending.discard(confirmed)
        for request_id in mined:
            if request_id not in due:
                outcomes[request_id] = Outcome.WAITING
            else:
                outcomes[request_id] = Outcome.DROPPED if request_id in confirmed else Outcome.RETRY
        self.orchestrator.forget_mined(due)
        return outcomes

    def _confirmed(self, request_ids: list[int], latest: int) -> list[int]:
        """Those settled requests whose settlement is ``confirmations`` blocks deep.

        A release or denial transaction can be reorged away after it was mined; the request
        stays pending (and is acted on again) until this member's act is confirmed.
        """
        block = max(0, latest - self.watcher.confirmations)
        try:
            states = self._read_requests(request_ids, block)
        except ChainError:
            return []  # asked again next poll
        done: list[int] = []
        for request_id, state in states.items():
            if isinstance(state, ChainError):
                continue  # not known at that depth yet
            req, acted = state
            # its part is done once its act is that deep
            if req.status in (RequestStatus.DENIED, RequestStatus.COMPLETED) or \
                    not self.orchestrator.concerns(req) or acted:
                done.append(request_id)
        return done

    def _settle_all(self, ids: list[int], now: int, cache: PollCache) -> dict[int, Outcome]:
        outcomes = self.orchestrator.settle_in_flight(ids)  # those with a transaction in flight
        try:
            states = self._read_requests([r for r in ids if r not in outcomes], "latest")
        except ChainError as exc:
            return {**outcomes, **self._failed([r for r in ids if r not in outcomes], exc)}

        def settle(request_id: int) -> Outcome:
            state = states[request_id]
            try:
                if isinstance(state, ChainError):
                    raise state
                req, acted = state
                return self.orchestrator.process(req, now, cache, acted=acted)
            except Exception as exc:
                return self._failed([request_id], exc)[request_id]

        ids_left = list(states)
        outcomes.update(zip(ids_left, _parallel(settle, ids_left, self.workers), strict=True))
        return outcomes

    @staticmethod
    def _failed(request_ids: list[int], exc: Exception) -> dict[int, Outcome]:
        """RETRY for each of ``request_ids``, the failure logged once."""
        if request_ids:
            log.error("request processing failed; retrying next poll", extra={"fields": {
                **({"request": request_ids[0]} if len(request_ids) == 1 else {"requests": request_ids}),
                "error": type(exc).__name__, "detail": str(exc)}})
        return dict.fromkeys(request_ids, Outcome.RETRY)

    def _read_requests(self, request_ids: list[int], block: int | str
                       ) -> dict[int, tuple[RequestInfo, bool] | ChainError]:
        """Each request and whether this member acted on it, at ``block``: two batched reads
        for all of them. When one id is unknown there (which reverts a whole batch), each is
        read on its own, so that one fails alone."""
        if not request_ids:
            return {}
        try:
            reqs = self.chain.retrievals.requests(request_ids, block)
            acted = self.member.acted_on(request_ids, block)
            return dict(zip(request_ids, zip(reqs, acted, strict=True), strict=True))
        except TransactionReverted:
            pass
        states: dict[int, tuple[RequestInfo, bool] | ChainError] = {}
        for request_id in request_ids:
            try:
                states[request_id] = (self.chain.retrievals.request(request_id, block),
                                      self.member.acted(request_id, block))
            except ChainError as exc:
                states[request_id] = exc
        return states

    def health_status(self) -> tuple[bool, dict[str, object]]:
        """The health verdict and body of ``/health`` (reads the chain head; blocking)."""
        verdict = judge(self.health, self.chain.client.block_number, self.watcher.confirmations,
                        self.watcher.cursor.block, time.monotonic())
        self.metrics.watcher_lag.set(verdict.lag_blocks)
        return verdict.healthy, {**verdict.as_json(), "account": self.account.address,
                                 "chain_id": self.chain.client.chain_id, "pending": len(self.pending)}

    def write_heartbeat(self, report: PollReport, error: str | None = None) -> None:
        """``state_dir/heartbeat.json``, atomically, 0600 (not fsynced: it is rewritten every poll)."""
        write_heartbeat(self.state_dir, self.account.address, self.watcher.cursor.block, error,
                        block=self.last_block, chain_time=report.chain_time, pending=len(self.pending),
                        mode="member", releases=self.releases)

    def run(self, stop: threading.Event, interval: float) -> None:
        """Poll until ``stop`` is set; a failing poll is logged and retried with back-off.

        An undecodable log from a watched contract stops the member (it would be skipped
        otherwise, and an approval with it).
        """
        def poll_and_log() -> None:
            report = self.poll()
            if report.outcomes and any(o is not Outcome.WAITING for o in report.outcomes.values()):
                log.info("poll", extra={"fields": _summary(report)})

        backoff = Backoff(base=2 * interval, cap=max(RETRY_CAP, 2 * interval),
                          jitter=proportional_jitter(random.random))
        self.health.started(time.monotonic())
        poll_loop(poll_and_log, stop, lambda: interval, backoff, log, fatal=(UndecodableLog,))


def _summary(report: PollReport) -> dict[str, Any]:
    counts = {o.value: report.count(o) for o in Outcome if report.count(o)}
    return {"block": report.block, "events": report.events, "seconds": round(report.seconds, 3),
            **counts}


def _parallel(fn: Callable[[int], R], items: list[int], workers: int) -> list[R]:
    if workers == 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="kos") as pool:
        return list(pool.map(fn, items))


def measure_throughput(service: KosService, request_ids: Iterable[int], timeout: float = 60.0,
                       interval: float = 0.05) -> float:
    """Poll until every given request is settled and mined; return the seconds the polls took.

    Afterwards (outside the measured time) checks on chain that this member released its
    shares of each request. Raises ``TimeoutError`` after ``timeout``, :class:`KosError` when
    a request was settled without this member's release (denied, say).
    """
    ids = set(request_ids)
    wanted = set(ids)
    started = time.monotonic()
    while wanted:
        report = service.poll()
        wanted -= {r for r, o in report.outcomes.items()
                   if o.final and not service.orchestrator.in_flight(r)}
        if wanted and time.monotonic() - started > timeout:
            raise TimeoutError(f"{len(wanted)} requests still unsettled after {timeout:.0f} s")
        if wanted:
            time.sleep(interval)
    seconds = time.monotonic() - started
    without = [r for r in ids if service.member.committee.release_state(r, service.member.address) != 1]
    if without:
        raise KosError(f"{len(without)} requests settled without this member's release: "
                       f"{sorted(without)[:10]}")
    return seconds


# --- process wiring ----------------------------------------------------------------


def _member(chain: ShardKeyChain, account: LocalAccount, key: HpkePrivateKey) -> CommitteeMember:
    if chain.committee is None:
        raise KosConfigError("the deployment names no KosCommittee; redeploy with 'shardkey network deploy'")
    return CommitteeMember(chain.committee, account, ShareOpener(key, chain.client.chain_id),
                           chain.client.chain_id, chain.deployment.start_block)


def _member_problem(node: Node) -> str | None:
    committee = node.chain.committee
    if committee is None:
        return "the deployment names no KosCommittee"
    newest = committee.current_epoch()
    if newest == 0:
        return "the KosCommittee has no epoch yet"
    # a member retired from the newest epoch still serves the datasets dealt to its older ones
    member = _member(node.chain, node.account, node.hpke_key)
    problems = [member.key_problem(epoch) for epoch in range(newest, 0, -1)]
    if any(problem is None for problem in problems):
        return None
    as_member = [p for epoch, p in zip(range(newest, 0, -1), problems, strict=True)
                 if member.index_in(epoch) is not None]
    if as_member:
        return as_member[0]
    if newest == 1:
        return problems[0]
    return f"account {member.address} is not a member of any committee epoch (1..{newest})"


MEMBER_CHECKS = (
    IdentityCheck("KOS committee member", _member_problem,
                  "the committee admin starts an epoch listing this account and its HPKE public key "
                  "(`shardkey kos committee start`; `shardkey kos status --config ...` shows both), or set "
                  "hpke_keystore and account_key to the member's own"),
)


def build(settings: KosSettings) -> KosService:
    """Start-up checks (deployment, keys, chain id, committee membership), then the member."""
    node = start_node(settings, PASSPHRASE_ENV, MEMBER_CHECKS)
    return KosService(node.chain, node.account, node.hpke_key, settings.state_dir,
                      confirmations=node.confirmations, workers=settings.workers,
                      issue_limit=RateLimiter(settings.issue_rate_limit, settings.issue_rate_window),
                      health=WatchHealth(settings.health_max_poll_age, settings.health_max_lag_blocks))


def run(config_path: Path) -> int:
    """Run a member until SIGTERM/SIGINT; return the exit code (0 on a clean stop).

    With ``metrics_port`` set, its socket is bound first (a taken port: exit code 4) and
    serves ``/health`` and ``/metrics`` while the member runs.
    """
    settings = load(config_path)
    configure_logging(settings.log_level)
    return run_monitored(settings.metrics_host, settings.metrics_port, lambda: build(settings),
                         lambda service: _run_member(service, settings))


def _run_member(service: KosService, settings: KosSettings) -> int:
    stop = threading.Event()
    stop_on_signals(stop, log)
    log.info("KOS committee member started", extra={"fields": {
        "account": service.account.address, "confirmations": service.watcher.confirmations,
        "pending": len(service.pending), "cursor_block": service.watcher.cursor.block}})
    service.run(stop, settings.poll_interval)
    log.info("KOS committee member stopped")
    return int(ServiceExit.OK)
