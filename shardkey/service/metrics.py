"""Prometheus metrics of the holder agent and the KOS: every name is defined here.

Each service instance owns a :class:`~prometheus_client.CollectorRegistry` (two services
in one test process never share counters). Labels are bounded and public: an event name
of the ShardKey contracts or an error class name; never an address, an id or a key.

================================================  =======  ===================================
metric                                            service  meaning
================================================  =======  ===================================
``shardkey_<svc>_watcher_lag_blocks``             both     cursor blocks behind head - depth
``shardkey_<svc>_events_handled_total{event}``    both     contract events handled, by name
``shardkey_<svc>_rpc_errors_total{kind}``         both     failed chain polls, by error class
``shardkey_<svc>_polls_total``                    both     successful chain polls
``shardkey_kos_tokens_issued_total``              KOS      unlock tokens sent (one per holder)
``shardkey_holder_deliveries_total``              holder   fragment deliveries sent
``shardkey_holder_uploads_total``                 holder   uploads staged
``shardkey_holder_bytes_stored``                  holder   bytes in custody (committed)
``shardkey_holder_bytes_staged``                  holder   bytes staged, not yet custody
================================================  =======  ===================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shardkey.chain.errors import ChainError
from shardkey.chain.events import ChainEvent

__all__ = ["CONTENT_TYPE_LATEST", "HolderMetrics", "KosMetrics", "ServiceMetrics"]


class _Watcher(Protocol):
    handlers: dict[str, Callable[[ChainEvent], None]]

    def on(self, event_name: str, handler: Callable[[ChainEvent], None]) -> None: ...


class ServiceMetrics:
    """The metrics both services export, prefixed ``shardkey_<service>_``."""

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
        self.bytes_stored = Gauge("shardkey_holder_bytes_stored", "Bytes in custody (committed)",
                                  registry=self.registry)
        self.bytes_staged = Gauge("shardkey_holder_bytes_staged", "Bytes staged, not yet custody",
                                  registry=self.registry)


class KosMetrics(ServiceMetrics):
    """A KOS replica's metrics."""

    def __init__(self) -> None:
        super().__init__("kos")
        self.tokens_issued = Counter("shardkey_kos_tokens_issued", "Unlock tokens this replica "
                                     "sent (one per fragment holder)", registry=self.registry)
