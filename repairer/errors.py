"""Errors of the repair service (one root, :class:`RepairerError`)."""

from __future__ import annotations

from shardkey.errors import ShardKeyError, UsageError


class RepairerError(ShardKeyError):
    """Base of every error the repair service raises on purpose."""


class RepairerConfigError(RepairerError, UsageError):
    """The repair service cannot start as configured (exit code 2)."""
