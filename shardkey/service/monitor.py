"""The optional monitoring port of the KOS and the repairer: ``/health`` and ``/metrics`` on a bound socket.

The socket comes from :func:`shardkey.service.listen.bind_listener` (a taken port is exit
code 4 before anything else starts); uvicorn serves it from a daemon thread while the
poll loop runs in the main thread. The holder serves the same two answers on its API port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shardkey.heap import freeze_long_lived
from shardkey.service.listen import bind_listener
from shardkey.service.metrics import CONTENT_TYPE_LATEST, ServiceMetrics

HealthAnswer = Callable[[], tuple[bool, dict[str, object]]]


def metrics_response(metrics: ServiceMetrics) -> Response:
    """The Prometheus text exposition of ``metrics``."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def health_response(healthy: bool, body: dict[str, object]) -> Response:
    """200 with ``body`` when healthy, else 503 with it."""
    return JSONResponse(body, status_code=200 if healthy else 503)


def monitor_app(health: HealthAnswer, metrics: ServiceMetrics) -> Starlette:
    """``GET /health`` (200 or 503 with the reason) and ``GET /metrics``.

    ``health`` is called in a worker thread (it reads the chain head).
    """
    from anyio import to_thread

    async def get_health(request: Request) -> Response:
        healthy, body = await to_thread.run_sync(health)
        return health_response(healthy, body)

    async def get_metrics(request: Request) -> Response:
        await to_thread.run_sync(health)  # refreshes the lag gauge
        return metrics_response(metrics)

    return Starlette(routes=[Route("/health", get_health, methods=["GET"]),
                             Route("/metrics", get_metrics, methods=["GET"])])


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MonitorServer:
    """``monitor_app`` served on an already bound ``listener`` from a daemon thread."""

    def __init__(self, app: Starlette, listener: socket.socket) -> None:
        host, port = listener.getsockname()[:2]
        self._listener = listener
        self._server = QuietServer(uvicorn.Config(app, host=str(host), port=int(port), log_config=None,
                                              access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [listener]},
                                        name="monitor", daemon=True)

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._listener.close()


class Monitored(Protocol):
    """A service that answers ``/health`` and ``/metrics``."""

    @property
    def metrics(self) -> ServiceMetrics: ...

    def health_status(self) -> tuple[bool, dict[str, object]]: ...


M = TypeVar("M", bound=Monitored)


def run_monitored(host: str, port: int | None, build: Callable[[], M], body: Callable[[M], int]) -> int:
    """Bind the monitoring port (when ``port`` is set; a taken one is exit code 4 before
    anything else starts), ``build`` the service, serve ``/health`` and ``/metrics`` while
    ``body`` runs it; return what ``body`` returns. The heap is frozen once the service is built
    (:func:`shardkey.heap.freeze_long_lived`)."""
    listener = bind_listener(host, port) if port is not None else None
    try:
        service = build()
    except BaseException:
        if listener is not None:
            listener.close()
        raise
    freeze_long_lived()  # built: what is alive now lives as long as the process
    monitor = None
    if listener is not None:
        monitor = MonitorServer(monitor_app(service.health_status, service.metrics), listener)
        monitor.start()
    try:
        return body(service)
    finally:
        if monitor is not None:
            monitor.stop()
