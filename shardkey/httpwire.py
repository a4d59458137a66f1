"""One kept-alive HTTP/1.1 connection for small request and answer exchanges: JSON-RPC.

:class:`http.client.HTTPConnection` parses every answer's headers with the ``email``
package and sends a request's head and body in separate writes; for a JSON-RPC call of a
few hundred bytes that was most of the call's CPU (about 250 µs, half of an idle holder's
chain polling; docs/PERFORMANCE.md "Step 8"). :class:`WireConnection` sends the request in one
write and reads the answer's head with a split per line. It reads what HTTP/1.1 servers
send back: a ``Content-Length`` body, a chunked one, or one that ends when the server
closes (then the connection is not reused); interim 1xx answers are skipped. Failures are
the exceptions :mod:`http.client` raises for the same cases, so callers tell a stale
connection (:data:`shardkey.httpconn.STALE`) from other trouble the same way.
"""

from __future__ import annotations

import http.client
import socket
import ssl

MAX_HEAD = 64 * 1024  # bytes of an answer's status line and headers
_READ = 65536


class WireConnection:
    """A connection to ``host:port`` (TLS with ``context`` when ``https``), opened at the
    first exchange; :attr:`sock` is None until then and after :meth:`close`."""

    def __init__(self, host: str, port: int | None, timeout: float, https: bool = False,
                 context: ssl.SSLContext | None = None):
        self.host = host
        self.port = port or (443 if https else 80)
        self.timeout = timeout
        self.https = https
        self.context = context
        self.sock: socket.socket | None = None
        self._pending = bytearray()  # bytes received and not yet consumed

    def close(self) -> None:
        """Close the socket (harmless when closed)."""
        sock, self.sock = self.sock, None
        self._pending = bytearray()
        if sock is not None:
            sock.close()

    def exchange(self, method: str, target: str, body: bytes,
                 headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, bool]:
        """Send one request; (status, lower-cased headers, body, whether the connection may
        carry another request). A header sent more than once is joined with ``, ``."""
        if self.sock is None:
            self._connect()
        assert self.sock is not None
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if self.port != (443 if self.https else 80):
            host = f"{host}:{self.port}"
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}",
                 *(f"{name}: {value}" for name, value in headers.items()), "", ""]
        self.sock.sendall("\r\n".join(lines).encode("latin-1") + body)
        while True:
            status, version, fields = self._read_head()
            if not 100 <= status < 200:
                break
        keep = version == "HTTP/1.1" and "close" not in fields.get("connection", "").lower()
        if method == "HEAD" or status in (204, 304):
            data = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            data = self._read_chunked()
        elif "content-length" in fields:
            length = fields["content-length"]
            if not length.isdigit():
                raise http.client.HTTPException(f"invalid Content-Length {length[:40]!r}")
            data = self._read_exact(int(length))
        else:
            data, keep = self._read_to_end(), False
        if self._pending:  # bytes past the answer: nothing was asked for them
            keep = False
        return status, fields, data, keep

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.https:
                context = self.context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def _receive(self) -> bytes:
        assert self.sock is not None
        return self.sock.recv(_READ)

    def _read_head(self) -> tuple[int, str, dict[str, str]]:
        start = 0
        while (end := self._pending.find(b"\r\n\r\n", start)) < 0:
            if len(self._pending) > MAX_HEAD:
                raise http.client.LineTooLong("answer head")
            start = max(0, len(self._pending) - 3)
            chunk = self._receive()
            if not chunk:
                if not self._pending:
                    raise http.client.RemoteDisconnected("Remote end closed connection without response")
                raise http.client.IncompleteRead(bytes(self._pending))
            self._pending += chunk
        if end > MAX_HEAD:
            raise http.client.LineTooLong("answer head")
        head = bytes(self._pending[:end]).decode("latin-1")
        del self._pending[:end + 4]
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit() or rest[3:4] not in ("", " "):
            raise http.client.BadStatusLine(status_line[:80])
        fields: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise http.client.HTTPException(f"malformed header line {line[:80]!r}")
            key, value = name.strip().lower(), value.strip()
            fields[key] = f"{fields[key]}, {value}" if key in fields else value
        return int(code), version, fields

    def _read_exact(self, length: int) -> bytes:
        while len(self._pending) < length:
            chunk = self._receive()
            if not chunk:
                raise http.client.IncompleteRead(bytes(self._pending), length - len(self._pending))
            self._pending += chunk
        data = bytes(self._pending[:length])
        del self._pending[:length]
        return data

    def _read_line(self) -> bytes:
        while (end := self._pending.find(b"\r\n")) < 0:
            if len(self._pending) > MAX_HEAD:
                raise http.client.LineTooLong("chunk size")
            chunk = self._receive()
            if not chunk:
                raise http.client.IncompleteRead(bytes(self._pending))
            self._pending += chunk
        line = bytes(self._pending[:end])
        del self._pending[:end + 2]
        return line

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise http.client.HTTPException(f"invalid chunk size {size_text[:40]!r}") from None
            if size == 0:
                while self._read_line():  # trailers, up to the blank line
                    pass
                return b"".join(parts)
            parts.append(self._read_exact(size))
            if self._read_exact(2) != b"\r\n":
                raise http.client.HTTPException("chunk not followed by CRLF")

    def _read_to_end(self) -> bytes:
        while chunk := self._receive():
            self._pending += chunk
        data = bytes(self._pending)
        self._pending = bytearray()
        return data
