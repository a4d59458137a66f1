"""Keep-alive HTTP/1.1 connections to one endpoint, on the standard library.

Both HTTP clients of the project use this pool: the client's transport to each holder
(:mod:`shardkey.client.transport`, on :mod:`http.client`, which streams bodies) and the
JSON-RPC adapter (:mod:`shardkey.chain.rpc`, on the leaner :mod:`shardkey.httpwire`).
httpx cost a millisecond or two of CPU per request, which made an idle agent's four chain
polls a second most of its CPU; a request through :class:`http.client.HTTPConnection` on a
kept-alive socket costs a tenth of that.

The pool holds at most ``size`` connections; a caller takes one (waiting while all are
busy), uses it for one request and its whole answer, and gives it back, to be kept only
when the answer was read to its end. A connection idle in the pool that the server closed
in the meantime is noticed before it is handed out (its socket is readable: end of file)
and replaced, so a request is not sent into a dead connection in the common case; callers
still retry a request that fails on a reused connection before any answer byte.
"""

from __future__ import annotations

import base64
import http.client
import queue
import select
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from shardkey.httpwire import WireConnection
from shardkey.netutil import tls_verify

# Failures of a reused connection the server closed while it was idle: the request was not
# processed, so it may be sent again on a fresh connection.
STALE = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, BrokenPipeError)


@dataclass(frozen=True)
class Target:
    """Where requests go: scheme, host, port, the URL's path and query, and the
    ``Authorization`` header its ``user:password@`` asks for."""

    https: bool
    host: str
    port: int | None
    path: str
    query: str
    authorization: str | None

    @property
    def request_target(self) -> str:
        """The URL's own path and query, as a request line names them."""
        return (self.path or "/") + (f"?{self.query}" if self.query else "")

    @classmethod
    def parse(cls, url: str) -> Target | None:
        """The target of an ``http(s)`` URL, or None when it is not one."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode()
        return cls(parts.scheme == "https", parts.hostname, port, parts.path, parts.query,
                   authorization)


class Connection(Protocol):
    """What the pool needs of a connection: its socket (None until connected) and close."""

    sock: socket.socket | None

    def close(self) -> None: ...


C = TypeVar("C", bound=Connection)


def http_client_connection(target: Target, timeout: float,
                           context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    """A :mod:`http.client` connection to ``target`` (streamed bodies: the holder transport)."""
    if target.https:
        return http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(target.host, target.port, timeout=timeout)


def wire_connection(target: Target, timeout: float, context: ssl.SSLContext | None) -> WireConnection:
    """A lean connection to ``target`` for small exchanges (:mod:`shardkey.httpwire`: JSON-RPC)."""
    return WireConnection(target.host, target.port, timeout, target.https, context)


class ConnectionPool(Generic[C]):
    """At most ``size`` keep-alive connections to ``target``, made by ``opener`` (thread-safe)."""

    def __init__(self, target: Target, url: str, timeout: float, size: int,
                 opener: Callable[[Target, float, ssl.SSLContext | None], C]):
        self.target = target
        self.timeout = timeout
        verify = tls_verify(url)
        self._context = verify if isinstance(verify, ssl.SSLContext) else None
        self._opener = opener
        self._idle: queue.LifoQueue[C] = queue.LifoQueue()
        self._slots = queue.Queue[None](size)  # one token per connection that may exist
        for _ in range(size):
            self._slots.put(None)
        self._closed = False

    def _open(self) -> C:
        return self._opener(self.target, self.timeout, self._context)

    def take(self, fresh: bool = False) -> tuple[C, bool]:
        """An idle connection (reused: True) or, when ``fresh`` or none is idle, a new one;
        waits while all ``size`` are busy. Give it back with :meth:`give`."""
        self._slots.get()
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return self._open(), False
            if fresh or _closed_by_peer(conn):
                conn.close()  # a stale one says its peers, idle as long, may be stale too
                continue
            assert conn.sock is not None
            conn.sock.settimeout(self.timeout)
            return conn, True

    def give(self, conn: C, keep: bool) -> None:
        """Return a connection taken with :meth:`take`; ``keep`` only if its last answer was
        read to the end."""
        if keep and not self._closed and conn.sock is not None:
            self._idle.put(conn)
        else:
            conn.close()
        self._slots.put(None)

    def close(self) -> None:
        """Close the idle connections; busy ones close when they are given back."""
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _closed_by_peer(conn: Connection) -> bool:
    """Whether an idle connection's socket is gone or readable (end of file, or bytes nobody
    asked for: either way it cannot carry a request)."""
    sock = conn.sock
    if sock is None:
        return True
    poller = select.poll()  # not select(): agents may hold descriptors past FD_SETSIZE
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
