"""The holder's data plane: shard uploads and downloads on blocking sockets.

A holder's public port is served by this module. A shard upload (``PUT`` with a
``Content-Length``) or download (``GET``) of ``/v1/datasets/{id}/shards/{index}`` in plain
HTTP/1.1 is handled here, on the connection's own thread: the body is received with
``recv_into`` straight into the page-aligned buffer it is written from with ``O_DIRECT``
(:class:`shardkey.directfile.DirectSink`), hashed as it arrives, and a served shard goes out
in one ``sendall`` or ``sendfile``. Through uvicorn and Starlette the same request cost a few Python
operations per 64 KiB chunk (the parser's buffer, flow control, an await per chunk) and two
thread hops; here it is a handful of system calls (docs/PERFORMANCE.md).

Everything else (every other route, a chunked or ``Expect: 100-continue`` upload, HTTP/1.0,
a header seen twice, a percent-escape in the path, a request head this module does not
parse) is not interpreted here: the connection, from that request on, is relayed byte for
byte to the full application
(:func:`holder_agent.api.create_app` under uvicorn), which listens on a loopback port of its
own. Both paths share every rule: the same functions verify, store, authorise and answer
(:mod:`holder_agent.operations`), and a failure maps to the same status and error body
(:func:`holder_agent.operations.refusal_of`). The data plane bounds what every connection may
cost: ``MAX_CONNECTIONS`` open at once (more get 503), a request head of at most ``MAX_HEAD``
bytes (431), ``IDLE_TIMEOUT`` between two requests and ``IO_TIMEOUT`` for any one receive or
send, on the relayed connections too.
"""

from __future__ import annotations

import contextlib
import http
import json
import logging
import re
import selectors
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from holder_agent.context import ApiContext
from holder_agent.operations import (
    begin_upload,
    check_accepting,
    count_served,
    finish_upload,
    refusal_of,
    request_id_of,
    serve_shard,
    uploaded,
    verify_upload_headers,
)
from holder_agent.storage import Upload, parse_dataset_id, parse_shard_index
from shardkey.httpauth import HEADER_RECEIPT, HEADER_SHARD_HASH

log = logging.getLogger(__name__)

SHARD_ROUTE = re.compile(r"/v1/datasets/([^/?]+)/shards/([^/?]+)")
MAX_HEAD = 16 * 1024  # a longer request head is refused (431), whatever its route
MAX_CONNECTIONS = 256  # open client connections; more are refused with 503
IDLE_TIMEOUT = 5.0  # seconds a kept-alive connection may wait for its next request
IO_TIMEOUT = 30.0  # seconds any one receive or send may wait
RECEIVE_CHUNK = 256 << 10  # body bytes received (and hashed while in cache) per recv_into
_FORWARDED = "forwarded"  # what a connection handed to the application ends with


@dataclass
class Head:
    """A parsed request head: method, target (path and query, as sent), lower-cased headers."""

    method: str
    target: str
    version: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


def parse_head(raw: bytes | bytearray) -> Head | None:
    """The head of one request (without its final blank line), or None when this module
    does not take it (malformed, or a header given twice): the application answers those."""
    try:
        text = raw.decode("latin-1")
        line, *fields = text.split("\r\n")
        method, target, version = line.split(" ")
    except ValueError:
        return None
    headers: dict[str, str] = {}
    for field in fields:
        name, sep, value = field.partition(":")
        name = name.lower()
        if not sep or not name or name != name.strip() or not name.isascii() or name in headers:
            return None
        headers[name] = value.strip(" \t")
    return Head(method, target, version, headers)


def takes(head: Head) -> bool:
    """Whether the data plane handles this request itself (the common, simple case)."""
    if head.version != "HTTP/1.1" or "transfer-encoding" in head.headers or "expect" in head.headers:
        return False
    if SHARD_ROUTE.fullmatch(head.path) is None or "%" in head.path:  # escapes: the app decodes
        return False
    if head.method == "PUT":
        return head.headers.get("content-length", "").isdigit()
    return head.method == "GET" and head.headers.get("content-length", "0") == "0"


class DataPlane:
    """Accepts on the holder's public listener; one thread per connection."""

    def __init__(self, ctx: ApiContext, listener: socket.socket, application: tuple[str, int]):
        self.ctx = ctx
        self.listener = listener
        self.application = application
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._open: set[socket.socket] = set()
        self._busy = 0  # connections inside a request (not idle between two)
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._accept_loop, name="dataplane", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish for up to ``grace`` seconds, then
        close every connection."""
        self._stopping.set()
        self._thread.join(timeout=2.0)
        with self._lock:
            self._lock.wait_for(lambda: self._busy == 0, timeout=grace)
            for conn in list(self._open):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not selector.select(timeout=0.25):
                    continue
                try:
                    conn, _ = self.listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    log.warning("accept failed", extra={"fields": {"detail": str(exc)}})
                    continue
                if not self._slots.acquire(blocking=False):
                    _refuse_busy(conn)
                    continue
                threading.Thread(target=self._connection, args=(conn,), name="dataplane-conn",
                                 daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)
        try:
            conn.setblocking(True)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _Connection(self, conn).serve()
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            with self._lock:
                self._open.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()
            self._slots.release()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Marks a connection as inside a request (a stop waits for those)."""
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()


class _HeadTooLarge(Exception):
    """A request head with no blank line within MAX_HEAD bytes."""


class _ClientGone(Exception):
    """The client closed its connection, or sent nothing for IO_TIMEOUT, inside a body."""


class _Connection:
    """One client connection: requests one after another until it closes or is relayed."""

    def __init__(self, plane: DataPlane, conn: socket.socket):
        self.plane, self.conn, self.ctx = plane, conn, plane.ctx
        self.pending = bytearray()  # bytes received past the last request's end

    def serve(self) -> None:
        while not self.plane._stopping.is_set():
            self.conn.settimeout(IDLE_TIMEOUT)
            try:
                raw = self._read_head()
            except _HeadTooLarge:
                self.conn.settimeout(IO_TIMEOUT)
                _send_error(self.conn, 431, "head_too_large", "the request head is over 16 KiB", close=True)
                return
            if raw is None:
                return
            self.conn.settimeout(IO_TIMEOUT)
            head = parse_head(raw[:-4])
            if head is None or not takes(head):
                self._relay(bytes(raw))
                return
            with self.plane.busy():
                keep = self._upload(head) if head.method == "PUT" else self._download(head)
            if not keep or head.headers.get("connection", "").lower() == "close":
                return

    def _read_head(self) -> bytearray | None:
        """The next request head with its blank line, None when the client closed or stayed
        silent; :class:`_HeadTooLarge` when it has no blank line within ``MAX_HEAD`` bytes."""
        buffer = self.pending
        start = 0
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end + 4 > MAX_HEAD or (end < 0 and len(buffer) > MAX_HEAD):
                self.pending = bytearray()
                raise _HeadTooLarge
            if end >= 0:
                raw = buffer[:end + 4]
                self.pending = buffer[end + 4:]
                return raw
            start = max(0, len(buffer) - 3)
            try:
                chunk = self.conn.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            buffer += chunk

    def _upload(self, head: Head) -> bool:
        """Receive one shard upload; True when the connection may carry another request."""
        match = SHARD_ROUTE.fullmatch(head.path)
        assert match is not None
        length = int(head.headers["content-length"])
        upload = None
        try:
            dataset_id = parse_dataset_id(match.group(1))
            index = parse_shard_index(match.group(2))
            check_accepting(self.ctx)
            signed = verify_upload_headers(self.ctx, head.headers, head.target, "PUT",
                                           head.headers["content-length"])
            upload = begin_upload(self.ctx, signed, dataset_id, index, direct=True)
        except Exception as exc:  # refused before the body: not read, so the connection closes
            self._refuse(head, exc, close=True)
            return False
        try:
            self._receive_into(upload, length)
        except _ClientGone:
            upload.discard()
            return False  # the client went away or stalled: nothing to answer
        except Exception as exc:  # the store refused a write (disk full...): the rest is unread
            upload.discard()
            self._refuse(head, exc, close=True)
            return False
        except BaseException:
            upload.discard()
            raise
        try:
            staged, size, digest = finish_upload(self.ctx, upload, dataset_id, index)
        except Exception as exc:
            self._refuse(head, exc, close=False)
            return True
        body = json.dumps(uploaded(signed, dataset_id, index, staged, size, digest),
                          separators=(",", ":")).encode()
        self._answer(201, {"content-type": "application/json"}, body)
        return True

    def _receive_into(self, upload: Upload, length: int) -> None:
        """Pass exactly ``length`` body bytes to ``upload`` (the ones already received first,
        the rest received straight into its buffer); :class:`_ClientGone` when the client
        closes or stalls first."""
        left = length
        if self.pending:
            with memoryview(self.pending) as pending:
                upload.write(pending[:left])
            taken = min(left, len(self.pending))
            left -= taken
            del self.pending[:taken]
        while left:
            left -= upload.receive(self._receive_some, min(left, RECEIVE_CHUNK))

    def _receive_some(self, view: memoryview) -> int:
        try:
            got = self.conn.recv_into(view)
        except OSError as exc:
            raise _ClientGone from exc
        if not got:
            raise _ClientGone
        return got

    def _download(self, head: Head) -> bool:
        match = SHARD_ROUTE.fullmatch(head.path)
        assert match is not None
        try:
            dataset_id = parse_dataset_id(match.group(1))
            index = parse_shard_index(match.group(2))
            request_id = request_id_of(head.query)
            digest, receipt, body = serve_shard(self.ctx, head.headers, head.target, dataset_id,
                                                index, request_id)
        except Exception as exc:
            self._refuse(head, exc, close=False)
            return True
        count_served(self.ctx, body)
        headers = {"content-type": "application/octet-stream", HEADER_SHARD_HASH.lower(): digest.hex(),
                   HEADER_RECEIPT.lower(): "0x" + receipt.hex()}
        if isinstance(body, bytes):
            self._answer(200, headers, body)
            return True
        with body:  # a shard over WHOLE_READ: sent from the file, never read whole
            size = body.seek(0, 2)
            body.seek(0)
            self._answer(200, headers, b"", length=size)
            self.conn.sendfile(body)
        return True

    def _refuse(self, head: Head, exc: Exception, close: bool) -> None:
        status, code, detail = refusal_of(exc, head.path)
        log.info("refused", extra={"fields": {"method": head.method, "path": head.path,
                                              "status": status, "error": code}})
        _send_error(self.conn, status, code, detail, close)

    def _answer(self, status: int, headers: dict[str, str], body: bytes, length: int | None = None) -> None:
        _send(self.conn, status, headers, body, length)

    def _relay(self, first: bytes) -> None:
        """Hand the rest of this connection to the application: ``first`` (what was read of
        the request it does not take) and everything after, byte for byte, both ways."""
        try:
            backend = socket.create_connection(self.plane.application, timeout=IO_TIMEOUT)
        except OSError:
            log.error("the holder's application port does not answer")
            return
        with backend:
            backend.sendall(first + bytes(self.pending))
            self.pending = bytearray()
            # Either side silent for IO_TIMEOUT ends the relay; the application closes a
            # kept-alive connection idle for 5 s, which ends it too: no relay outlives its use.
            self.conn.settimeout(IO_TIMEOUT)
            back = threading.Thread(target=_pump, args=(backend, self.conn), name="dataplane-relay",
                                    daemon=True)
            back.start()
            _pump(self.conn, backend)
            back.join()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until ``source`` ends or is silent for IO_TIMEOUT; then end
    both: ``sink``'s sending side, and ``source``'s receiving side (which ends the pump the
    other way, waiting on it)."""
    buffer = bytearray(65536)
    view = memoryview(buffer)
    try:
        while got := source.recv_into(buffer):
            sink.sendall(view[:got])
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RD)


def _send(conn: socket.socket, status: int, headers: dict[str, str], body: bytes,
          length: int | None = None) -> None:
    """One answer: status line, ``content-length`` (``length``, else the body's), ``headers``."""
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
             f"content-length: {len(body) if length is None else length}",
             *(f"{name}: {value}" for name, value in headers.items())]
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def _send_error(conn: socket.socket, status: int, code: str, detail: str, close: bool) -> None:
    """The API's one error body, ``{"error": code, "detail": detail}``."""
    headers = {"content-type": "application/json"}
    if close:
        headers["connection"] = "close"
    body = json.dumps({"error": code, "detail": detail}, separators=(",", ":")).encode()
    _send(conn, status, headers, body)


def _refuse_busy(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        _send_error(conn, 503, "busy", "too many open connections; try again", close=True)
    with contextlib.suppress(OSError):
        conn.close()
