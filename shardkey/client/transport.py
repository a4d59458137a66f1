"""A lean keep-alive HTTP/1.1 transport to one holder, on the standard library.

The shard data path moves a megabyte per request, so what a request costs besides the
bytes themselves is what matters: one :class:`http.client.HTTPConnection` per lane, kept
alive and reused; a body sent as one ``sendall`` of the caller's buffer; an answer read
with ``readinto`` straight into a buffer of the exact size the caller expects (a stored
shard's length is known before it is asked for), one ``recv`` at a time so that an
overall deadline cuts off a holder that drips bytes. No answer is ever read past its cap:
a body longer than expected aborts the request, an error answer is read truncated.

A request that fails before any answer byte arrived on a reused connection (the holder
closed it while it was idle) is retried on a fresh one, freshly signed, when it is
idempotent; every holder call the client makes is (an identical upload is a no-op).
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shardkey.errors import ShardKeyError
from shardkey.httpconn import STALE, ConnectionPool, Target, http_client_connection

RETRIES = 2  # transport failures retried per request (a stale keep-alive connection)
ERROR_BODY_CAP = 4096  # bytes of an error answer read (the detail is shown truncated)
LANES = 4  # keep-alive connections (requests in flight) per holder by default


class HolderRequestError(ShardKeyError):
    """A holder refused a request or could not be reached; names the holder."""

    def __init__(self, holder: str, message: str, status: int | None = None):
        self.holder = holder
        self.status = status
        self.reason = message
        super().__init__(f"holder {holder}: {message}")


@dataclass
class Answer:
    """A holder's answer: status, headers (lower-case names) and the body read (for an
    error status, at most :data:`ERROR_BODY_CAP` bytes of it)."""

    status: int
    headers: Mapping[str, str]
    body: memoryview | None  # None: an error answer that could not be read

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


Signer = Callable[[], dict[str, str]]


class Transport:
    """Up to ``lanes`` keep-alive connections to one holder endpoint (thread-safe: a caller
    takes an idle connection or opens one, and gives it back after a complete answer)."""

    def __init__(self, holder: str, endpoint: str, timeout: float = 60.0, lanes: int = LANES):
        self.holder = holder
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        # A holder with a malformed endpoint fails each of its requests, not its client's caller.
        target = Target.parse(self.endpoint)
        self._prefix = target.path if target is not None else ""
        self._pool = None if target is None else ConnectionPool(target, self.endpoint, timeout, lanes,
                                                                      http_client_connection)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def request(self, method: str, path: str, body: bytes | bytearray | memoryview = b"",
                sign: Signer | None = None, *, cap: int, what: str,
                into: bytearray | None = None) -> Answer:
        """Send one request (``sign()`` gives its auth headers, called again for a retry)
        and read its answer: at most ``cap`` bytes of body for a success (into ``into``
        when given, which must hold ``cap`` bytes), a truncated one for an error status."""
        pool = self._pool
        if pool is None:
            raise HolderRequestError(self.holder, f"endpoint {self.endpoint!r} is not an http(s) URL")
        fresh = False
        for attempt in range(RETRIES + 1):
            conn, reused = pool.take(fresh)
            keep = False
            try:
                response = self._exchange(conn, method, path, body, sign)
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                # A reused connection the holder closed while idle fails before the request is
                # processed: try again on a fresh connection, freshly signed.
                pool.give(conn, False)
                if attempt < RETRIES and isinstance(exc, STALE):
                    if not reused:
                        time.sleep(0.05 * (attempt + 1))
                    fresh = True
                    continue
                raise HolderRequestError(self.holder, f"unreachable at {self.endpoint} "
                                         f"({exc.__class__.__name__})") from None
            try:
                error = response.status >= 400
                try:
                    data: memoryview | None = self._read(
                        conn, response, ERROR_BODY_CAP if error else cap,
                        f"{what} error answer" if error else what, None if error else into,
                        truncate=error)
                except HolderRequestError:
                    if not error:
                        raise
                    data = None
                keep = not response.will_close and response.fp is None
                headers = {k.lower(): v for k, v in response.getheaders()}
                return Answer(response.status, headers, data)
            finally:
                response.close()
                pool.give(conn, keep)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _exchange(self, conn: http.client.HTTPConnection, method: str, path: str,
                  body: bytes | bytearray | memoryview,
                  sign: Signer | None) -> http.client.HTTPResponse:
        conn.putrequest(method, self._prefix + path, skip_accept_encoding=True)
        for name, value in (sign() if sign is not None else {}).items():
            conn.putheader(name, value)
        if len(body) or method != "GET":
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if len(body) else None)
        return conn.getresponse()

    def _read(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
              limit: int, what: str, into: bytearray | None, truncate: bool) -> memoryview:
        """The body, at most ``limit`` bytes, read ``recv`` by ``recv`` against the deadline;
        the connection is reusable afterwards only if the whole body was read."""
        deadline = time.monotonic() + self.timeout
        declared = response.length
        if declared is not None and declared > limit and not truncate:
            raise HolderRequestError(self.holder, f"{what} longer than the {limit} bytes expected; "
                                     "download aborted")
        buffer = into if into is not None and len(into) >= limit else bytearray(limit)
        view = memoryview(buffer)
        reader = _Body(response, conn, self.holder, what, deadline, self.timeout)
        try:
            size = reader.read_into(view[:limit], truncate)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) and time.monotonic() >= deadline - 0.05:
                raise reader.late() from None  # the last recv was cut to the deadline
            raise HolderRequestError(self.holder, f"{what} interrupted "
                                     f"({exc.__class__.__name__})") from None
        return view[:size]


class _Body:
    """Reads one answer's body (``Content-Length`` or chunked) into a caller's buffer, one
    ``recv`` at a time, with the per-``recv`` timeout cut to what is left of the deadline."""

    def __init__(self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                 holder: str, what: str, deadline: float, timeout: float):
        self.response, self.conn, self.holder, self.what = response, conn, holder, what
        self.deadline, self.timeout = deadline, timeout
        fp = response.fp
        assert fp is not None
        self.fp = fp

    def late(self) -> HolderRequestError:
        return HolderRequestError(self.holder, f"{self.what} not received within "
                                  f"{self.timeout:.0f} s; download aborted")

    def _tick(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.late()
        if self.conn.sock is not None:
            self.conn.sock.settimeout(min(self.timeout, left))

    def _fill(self, view: memoryview) -> int:
        """Read until ``view`` is full or the stream ends; bytes read."""
        at = 0
        while at < len(view):
            self._tick()
            got = self.fp.readinto1(view[at:])
            if not got:
                break
            at += got
        return at

    def read_into(self, view: memoryview, truncate: bool) -> int:
        response = self.response
        if response.chunked:
            size, complete = self._chunked(view, truncate)
        elif response.length is not None:
            want = response.length
            size = self._fill(view[:min(want, len(view))])
            if size < want and size < len(view):
                raise http.client.IncompleteRead(b"", want - size)
            complete = size == want
        else:  # the body ends with the connection, which is not reused
            size = self._fill(view)
            complete = False
            if size == len(view) and not truncate and self._fill(memoryview(bytearray(1))):
                raise self._too_long(len(view))
        if complete:
            response.fp = None  # type: ignore[assignment]  # all read: the connection may be reused
            self.fp.close()
        return size

    def _too_long(self, limit: int) -> HolderRequestError:
        return HolderRequestError(self.holder, f"{self.what} longer than the {limit} bytes "
                                  "expected; download aborted")

    def _chunked(self, view: memoryview, truncate: bool) -> tuple[int, bool]:
        at = 0
        while True:
            self._tick()
            line = self.fp.readline(1026)
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise http.client.IncompleteRead(b"") from None
            if size == 0:
                while self.fp.readline(1026) not in (b"\r\n", b"\n", b""):  # trailers
                    self._tick()
                return at, True
            if at + size > len(view):
                if truncate:
                    at += self._fill(view[at:])
                    return at, False
                raise self._too_long(len(view))
            if self._fill(view[at:at + size]) < size:
                raise http.client.IncompleteRead(b"", size)
            at += size
            self.fp.readline(3)  # the CRLF after the chunk
