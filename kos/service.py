"""A KOS replica: settings, keys, the event watcher and the poll loop.

Each poll (every ``poll_interval`` seconds):

1. the watcher hands confirmed ``RetrievalApproved`` events to a handler that adds the
   request to the persisted pending set (saved before the cursor moves past the event);
2. every pending request is settled by :class:`kos.orchestrator.Orchestrator` on a small
   thread pool (reads of one poll share a :class:`~kos.orchestrator.PollCache`);
3. ``state_dir/heartbeat.json`` is rewritten (pid, last block seen, pending count).

Logs are JSON lines on stderr; no wrap key, token plaintext, passphrase or key is ever
logged. SIGTERM and SIGINT stop the loop after the current poll; the exit code is 0. Start-up
(deployment, keys, chain id, KOS_ROLE, KOS key) is :mod:`shardkey.service.startup`'s; its
errors carry the exit codes of :mod:`shardkey.service.exits`.

With ``committee_member = true`` the process is a KOS committee member (:mod:`kos.member`): it
needs no KOS_ROLE; start-up checks instead that its account is a member of a committee epoch
(the newest, or an older one whose datasets it still serves) with its HPKE key registered
there. The heartbeat then also carries ``mode``, the epoch, its member index and the releases it sent.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount

from kos.checks import PollCache, WrapKeyUnsealer
from kos.errors import KosConfigError, KosError
from kos.leader import PendingSet
from kos.member import CommitteeMember, ShareOpener
from kos.orchestrator import Orchestrator, Outcome
from kos.settings import KosSettings, load
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.chaintime import ChainTime
from shardkey.chain.errors import ChainError, UndecodableLog
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
    """One replica: watcher + pending set + orchestrator + heartbeat."""

    def __init__(self, chain: ShardKeyChain, account: LocalAccount, key: HpkePrivateKey,
                 state_dir: Path, *, replicas: Sequence[str] = (), takeover_after: int = 10,
                 confirmations: int = 1, workers: int = DEFAULT_WORKERS,
                 receipt_wait: float = 30.0, issue_limit: RateLimiter | None = None,
                 health: WatchHealth | None = None, committee_member: bool = False) -> None:
        self.chain = chain
        self.metrics = KosMetrics()
        self.health = health or WatchHealth()
        self.receipt_wait = receipt_wait
        self.account = account
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.member = _member(chain, account, key) if committee_member else None
        self.releases = 0  # releaseShares sent (member mode; the heartbeat shows it)
        self.orchestrator = Orchestrator(chain, account, WrapKeyUnsealer(key, chain.client.chain_id),
                                         replicas=replicas, takeover_after=takeover_after,
                                         issue_limit=issue_limit, on_tokens_sent=self._sent,
                                         member=self.member)
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
        self.metrics.tokens_issued.inc(count)
        if self.member is not None:
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
            ids = list(self.pending)
            if ids:
                cache = PollCache(self.chain)
                report.outcomes = self._settle_all(ids, report.chain_time, cache)
                report.outcomes.update(self.orchestrator.wait_in_flight(self.receipt_wait))
                settled = [r for r, o in report.outcomes.items() if o.final]
                self.pending.discard(self._confirmed(settled, report.block, cache))
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

    def _confirmed(self, request_ids: list[int], latest: int, cache: PollCache) -> list[int]:
        """Those settled requests whose settlement is ``confirmations`` blocks deep.

        A token or denial transaction can be reorged away after it was mined; the request
        stays pending (and is acted on again) until its final state is confirmed.
        """
        block = max(0, latest - self.watcher.confirmations)

        def settled_at_depth(request_id: int) -> bool:
            try:
                req = self.chain.retrievals.request(request_id, block)
            except ChainError:
                return False  # not known at that depth yet
            if req.status in (RequestStatus.DENIED, RequestStatus.COMPLETED) or \
                    not self.orchestrator.concerns(req):
                return True
            if self.member is not None:  # this member's part is done once its act is that deep
                return self.member.acted(request_id, block)
            if req.status == RequestStatus.APPROVED:
                holders = cache.dataset(req.dataset_id).params.fragment_holders  # fixed at registration
                return req.tokens_issued >= len(holders)
            return False

        return [r for r, done in zip(request_ids, _parallel(settled_at_depth, request_ids, self.workers),
                                     strict=True) if done]

    def _settle_all(self, ids: list[int], now: int, cache: PollCache) -> dict[int, Outcome]:
        def settle(request_id: int) -> Outcome:
            try:
                req: RequestInfo = self.chain.retrievals.request(request_id)
                return self.orchestrator.process(req, now, cache)
            except Exception as exc:
                log.error("request processing failed; retrying next poll", extra={"fields": {
                    "request": request_id, "error": type(exc).__name__, "detail": str(exc)}})
                return Outcome.RETRY

        outcomes = _parallel(settle, ids, self.workers)
        return dict(zip(ids, outcomes, strict=True))

    def health_status(self) -> tuple[bool, dict[str, object]]:
        """The health verdict and body of ``/health`` (reads the chain head; blocking)."""
        verdict = judge(self.health, self.chain.client.block_number, self.watcher.confirmations,
                        self.watcher.cursor.block, time.monotonic())
        self.metrics.watcher_lag.set(verdict.lag_blocks)
        return verdict.healthy, {**verdict.as_json(), "account": self.account.address,
                                 "chain_id": self.chain.client.chain_id, "pending": len(self.pending)}

    def write_heartbeat(self, report: PollReport, error: str | None = None) -> None:
        """``state_dir/heartbeat.json``, atomically, 0600 (not fsynced: it is rewritten every poll)."""
        extra: dict[str, object] = {}
        if self.member is not None:
            extra = {"mode": "member", "releases": self.releases}
        write_heartbeat(self.state_dir, self.account.address, self.watcher.cursor.block, error,
                        block=self.last_block, chain_time=report.chain_time, pending=len(self.pending),
                        **extra)

    def run(self, stop: threading.Event, interval: float) -> None:
        """Poll until ``stop`` is set; a failing poll is logged and retried with back-off.

        An undecodable log from a watched contract stops the replica (it would be skipped
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

    Afterwards (outside the measured time) checks on chain that each request has all its
    tokens. Raises ``TimeoutError`` after ``timeout``, :class:`KosError` when a request
    was settled without all its tokens (denied, say).
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
    without = [r for r in ids if not _all_tokens(service, r)]
    if without:
        raise KosError(f"{len(without)} requests settled without all their tokens: {sorted(without)[:10]}")
    return seconds


def _all_tokens(service: KosService, request_id: int) -> bool:
    req = service.chain.retrievals.request(request_id)
    holders = service.chain.datasets.fragment_set(req.dataset_id, req.fragment_epoch).holders
    return req.tokens_issued >= len(holders)


# --- process wiring ----------------------------------------------------------------


def _member(chain: ShardKeyChain, account: LocalAccount, key: HpkePrivateKey) -> CommitteeMember:
    if chain.committee is None:
        raise KosConfigError("committee_member is set but the deployment has no KosCommittee; redeploy "
                             "with 'shardkey network deploy'")
    return CommitteeMember(chain.committee, account, ShareOpener(key, chain.client.chain_id),
                           chain.client.chain_id, chain.deployment.start_block)


def _role_problem(node: Node) -> str | None:
    me = node.account.address
    if node.chain.retrievals.has_kos_role(me):
        return None
    return f"account {me} does not hold KOS_ROLE on the RetrievalCoordinator"


def _key_problem(node: Node) -> str | None:
    expected = node.deployment.kos_public_key
    if expected and expected != node.hpke_key.public_key_bytes():
        return "the HPKE keystore's public key is not the deployment's kos_public_key"
    return None


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
                  "(`shardkey kos status --config ...` shows both), or set hpke_keystore and account_key "
                  "to the member's own"),
)

KOS_CHECKS = (
    IdentityCheck("KOS role", _role_problem,
                  "the coordinator's admin runs `shardkey kos role grant <address>` (or deploys "
                  "with `shardkey network deploy --kos-address <address>`)"),
    IdentityCheck("KOS key", _key_problem,
                  "set hpke_keystore to the keystore whose public key the deployment names"),
)


def build(settings: KosSettings) -> KosService:
    """Start-up checks (deployment, keys, chain id, KOS_ROLE, KOS key), then the replica."""
    node = start_node(settings, PASSPHRASE_ENV, MEMBER_CHECKS if settings.committee_member else KOS_CHECKS)
    if settings.committee_member:
        return KosService(node.chain, node.account, node.hpke_key, settings.state_dir,
                          confirmations=node.confirmations, workers=settings.workers,
                          issue_limit=RateLimiter(settings.issue_rate_limit, settings.issue_rate_window),
                          health=WatchHealth(settings.health_max_poll_age, settings.health_max_lag_blocks),
                          committee_member=True)
    replicas = settings.replicas or [node.account.address]
    if node.account.address not in replicas:
        raise KosConfigError(f"replicas does not list this replica's account {node.account.address}")
    return KosService(node.chain, node.account, node.hpke_key, settings.state_dir, replicas=replicas,
                      takeover_after=settings.takeover_after, confirmations=node.confirmations,
                      workers=settings.workers,
                      issue_limit=RateLimiter(settings.issue_rate_limit, settings.issue_rate_window),
                      health=WatchHealth(settings.health_max_poll_age, settings.health_max_lag_blocks))


def run(config_path: Path) -> int:
    """Run a replica until SIGTERM/SIGINT; return the exit code (0 on a clean stop).

    With ``metrics_port`` set, its socket is bound first (a taken port: exit code 4) and
    serves ``/health`` and ``/metrics`` while the replica runs.
    """
    settings = load(config_path)
    configure_logging(settings.log_level)
    return run_monitored(settings.metrics_host, settings.metrics_port, lambda: build(settings),
                         lambda service: _run_replica(service, settings))


def _run_replica(service: KosService, settings: KosSettings) -> int:
    stop = threading.Event()
    stop_on_signals(stop, log)
    what = "KOS committee member" if service.member else "KOS replica"
    who: dict[str, object] = {"account": service.account.address}
    if service.member is None:
        who["replicas"] = service.orchestrator.replicas
    log.info(f"{what} started", extra={"fields": {
        **who, "confirmations": service.watcher.confirmations, "pending": len(service.pending),
        "cursor_block": service.watcher.cursor.block}})
    service.run(stop, settings.poll_interval)
    log.info(f"{what} stopped")
    return int(ServiceExit.OK)
