"""Exit codes of the long-running services (``shardkey kos run``, ``shardkey holder run``,
``shardkey repairer run``).

One table for every service, so the same mistake gives the same status in each:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     clean stop (SIGTERM / SIGINT)
1     unexpected failure (a bug, the chain unreachable, an undecodable log)
2     configuration error: settings file missing or malformed, a key file missing,
      a wrong passphrase, an invalid deployment file
3     chain identity: the RPC serves another chain, or this account is not
      registered / lacks its role / holds another key than the one on chain
4     the listening address cannot be bound (port in use, no permission)
====  ==========================================================================
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import IntEnum

from shardkey.errors import ShardKeyError, UsageError


class ServiceExit(IntEnum):
    """Process exit status of a service."""

    OK = 0
    UNEXPECTED = 1
    CONFIG = 2
    IDENTITY = 3
    BIND = 4


class ServiceError(ShardKeyError):
    """Root of the errors the service core raises on purpose."""

    exit_code = int(ServiceExit.UNEXPECTED)


class IdentityError(ServiceError):
    """The chain, or this account's standing on it, is not what the service needs."""

    exit_code = int(ServiceExit.IDENTITY)


class BindError(ServiceError):
    """The HTTP listener cannot bind its address."""

    exit_code = int(ServiceExit.BIND)


def service_exit_code(exc: BaseException) -> ServiceExit:
    """The status a service exits with when start-up or the run loop ends with ``exc``.

    Every configuration mistake (settings, key files, passphrase, deployment file) is a
    :class:`~shardkey.errors.UsageError` somewhere in ``shardkey``; anything that is not
    classified here is unexpected.
    """
    if isinstance(exc, BindError):
        return ServiceExit.BIND
    if isinstance(exc, IdentityError):
        return ServiceExit.IDENTITY
    if isinstance(exc, UsageError):
        return ServiceExit.CONFIG
    return ServiceExit.UNEXPECTED


def run_service(prog: str, body: Callable[[], int]) -> int:
    """Run a service's ``body`` and return its exit status.

    A ShardKey error ends the service with one line on stderr, ``<prog>: error: <message>``,
    and the status :func:`service_exit_code` gives it; both entry points of each service
    (``python -m kos`` / ``shardkey kos run``, and the holder's) go through here.
    """
    try:
        return body()
    except ShardKeyError as exc:
        message = " ".join(str(exc).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return int(service_exit_code(exc))
