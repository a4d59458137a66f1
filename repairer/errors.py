"""Errors of the repair service (one root, :class:`RepairerError`).

Start-up errors come from the service core (:mod:`shardkey.service.exits`: configuration,
identity, bind) and a dataset's repair failure is :class:`shardkey.client.repair.RepairError`,
logged and retried; this root is for what the service itself refuses.
"""

from __future__ import annotations

from shardkey.errors import ShardKeyError


class RepairerError(ShardKeyError):
    """Base of every error the repair service raises on purpose."""
