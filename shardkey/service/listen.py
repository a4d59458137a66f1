"""The HTTP listener's socket, bound before anything else starts so that a taken port is
reported as such (exit code 4), not as a server that silently never came up."""

from __future__ import annotations

import socket

from shardkey.service.exits import BindError


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (SO_REUSEADDR, like uvicorn's own); not yet listening."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}; fix listen_host") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}; stop whatever holds the "
                        "port or set listen_port to a free one") from None
    return sock
