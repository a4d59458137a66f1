"""Errors of the Key Orchestration Service (one root, :class:`KosError`)."""

from __future__ import annotations

from shardkey.errors import ShardKeyError, UsageError


class KosError(ShardKeyError):
    """Base of every error the KOS raises on purpose."""


class KosConfigError(KosError, UsageError):
    """The KOS cannot start as configured (no committee, not a member, wrong key)."""
