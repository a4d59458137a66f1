"""Exception root of the ``shardkey`` package.

Every error the library raises on purpose derives from :class:`ShardKeyError`, so the
CLI can catch one class and map it to an exit code. Subclasses set ``exit_code``.
"""

from __future__ import annotations


class ShardKeyError(Exception):
    """Base of every error ShardKey raises on purpose."""

    exit_code: int = 1


class UsageError(ShardKeyError):
    """Bad usage or input: a malformed file, an unknown key, a value out of range."""

    exit_code = 2


class PolicyDenied(ShardKeyError):
    """A request was refused by the Key Access Policy."""

    exit_code = 3


class RestoreError(ShardKeyError):
    """Data could not be restored or verified."""

    exit_code = 4
