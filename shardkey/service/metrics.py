"""Prometheus metrics of the holder agent, the KOS and the repairer: every name is defined here.

Each service instance owns a :class:`~prometheus_client.CollectorRegistry` (two services
in one test process never share counters). Labels are bounded and public: an event name
of the ShardKey contracts or an error class name; never an address, an id or a key.

================================================  =======  ===================================
metric                                            service  meaning
================================================  =======  ===================================
``shardkey_<svc>_watcher_lag_blocks``             all      cursor blocks behind head - depth
``shardkey_<svc>_events_handled_total{event}``    all      contract events handled, by name
``shardkey_<svc>_rpc_errors_total{kind}``         all      failed chain polls, by error class
``shardkey_<svc>_polls_total``                    all      successful chain polls
``shardkey_kos_envelopes_released_total``         KOS      share envelopes released (one per holder)
``shardkey_holder_deliveries_total``              holder   fragment deliveries sent
``shardkey_holder_uploads_total``                 holder   uploads staged
``shardkey_holder_bytes_received_total``          holder   body bytes of the uploads staged
``shardkey_holder_shards_served_total``           holder   shards served (downloads, repair reads)
``shardkey_holder_bytes_served_total``            holder   bytes of the shards served
``shardkey_holder_bytes_stored``                  holder   bytes in custody (committed)
``shardkey_holder_bytes_staged``                  holder   bytes staged, not yet custody
``shardkey_repairer_shards_repaired_total``       repairer shards rebuilt and placed
``shardkey_repairer_repair_failures_total``       repairer dataset repairs that failed
``shardkey_repairer_datasets_due``                repairer datasets due for repair
``shardkey_repairer_stripes_at_risk``             repairer stripes at/below k + margin good
``shardkey_repairer_redeal_needed``               repairer datasets with a non-Active
                                                           fragment holder (owner re-deals)
``shardkey_repairer_last_pass_block``             repairer block of the last full scan
================================================  =======  ===================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shardkey.chain.errors import ChainError
from shardkey.chain.events import ChainEvent

__all__ = ["CONTENT_TYPE_LATEST", "HolderMetrics", "KosMetrics", "RepairerMetrics", "ServiceMetrics"]


class _Watcher(Protocol):
    handlers: dict[str, Callable[[ChainEvent], None]]

    def on(self, event_name: str, handler: Callable[[ChainEvent], None]) -> None: ...


class ServiceMetrics:
    """The metrics every service exports, prefixed ``shardkey_<service>_``."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        prefix = f"shardkey_{service}"
        self.watcher_lag = Gauge(f"{prefix}_watcher_lag_blocks", "Blocks the event cursor is behind "
                                 "the newest block deep enough to act on", registry=self.registry)
        self.events = Counter(f"{prefix}_events_handled", "Contract events handled, by event name",
                              ["event"], registry=self.registry)
        self.rpc_errors = Counter(f"{prefix}_rpc_errors", "Chain polls that failed, by error class",
                                  ["kind"], registry=self.registry)
        self.polls = Counter(f"{prefix}_polls", "Chain polls that succeeded", registry=self.registry)

    def count_handlers(self, watcher: _Watcher) -> None:
        """Wrap every handler registered on ``watcher`` so each handled event is counted."""
        for name, handler in list(watcher.handlers.items()):
            watcher.on(name, self._counted(name, handler))

    def _counted(self, name: str, handler: Callable[[ChainEvent], None]) -> Callable[[ChainEvent], None]:
        counter = self.events.labels(event=name)

        def handle(event: ChainEvent) -> None:
            handler(event)
            counter.inc()

        return handle

    def counted_poll(self, poll: Callable[[], object]) -> Callable[[], None]:
        """``poll`` that counts its successes and its chain failures (by class), then re-raises."""
        def run() -> None:
            try:
                poll()
            except ChainError as exc:
                self.rpc_errors.labels(kind=type(exc).__name__).inc()
                raise
            self.polls.inc()

        return run

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric of this service."""
        return bytes(generate_latest(self.registry))


class HolderMetrics(ServiceMetrics):
    """A holder agent's metrics."""

    def __init__(self) -> None:
        super().__init__("holder")
        self.deliveries = Counter("shardkey_holder_deliveries", "Fragment deliveries sent",
                                  registry=self.registry)
        self.uploads = Counter("shardkey_holder_uploads", "Uploads staged", registry=self.registry)
        self.bytes_received = Counter("shardkey_holder_bytes_received", "Body bytes of the uploads "
                                      "staged", registry=self.registry)
        self.shards_served = Counter("shardkey_holder_shards_served", "Shards served (downloads and "
                                     "repair reads)", registry=self.registry)
        self.bytes_served = Counter("shardkey_holder_bytes_served", "Bytes of the shards served",
                                    registry=self.registry)
        self.bytes_stored = Gauge("shardkey_holder_bytes_stored", "Bytes in custody (committed)",
                                  registry=self.registry)
        self.bytes_staged = Gauge("shardkey_holder_bytes_staged", "Bytes staged, not yet custody",
                                  registry=self.registry)


class KosMetrics(ServiceMetrics):
    """A KOS committee member's metrics."""

    def __init__(self) -> None:
        super().__init__("kos")
        self.envelopes_released = Counter("shardkey_kos_envelopes_released", "Share envelopes this "
                                          "member released (one per fragment holder per release)",
                                          registry=self.registry)


class RepairerMetrics(ServiceMetrics):
    """The repair service's metrics."""

    def __init__(self) -> None:
        super().__init__("repairer")
        self.shards_repaired = Counter("shardkey_repairer_shards_repaired", "Shards rebuilt and "
                                       "placed on a new holder", registry=self.registry)
        self.repair_failures = Counter("shardkey_repairer_repair_failures", "Dataset repairs that "
                                       "failed (retried later with back-off)", registry=self.registry)
        self.datasets_due = Gauge("shardkey_repairer_datasets_due", "Datasets due for repair at the "
                                  "last look", registry=self.registry)
        self.stripes_at_risk = Gauge("shardkey_repairer_stripes_at_risk", "Stripes with at most "
                                     "k + repair_margin good shards", registry=self.registry)
        self.redeal_needed = Gauge("shardkey_repairer_redeal_needed", "Datasets whose fragment "
                                   "holders include a non-Active holder (the owner must re-deal)",
                                   registry=self.registry)
        self.last_pass_block = Gauge("shardkey_repairer_last_pass_block", "Chain head at the last "
                                     "full scan of the Active datasets", registry=self.registry)
