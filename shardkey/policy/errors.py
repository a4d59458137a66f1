"""Errors raised by :mod:`shardkey.policy`.

Every class derives from :class:`PolicyError` (itself a
:class:`~shardkey.errors.ShardKeyError`). Malformed policies and policy files derive
from :class:`~shardkey.errors.UsageError` (exit code 2); a request refused by the
policy raises :class:`PolicyDeniedError`, a :class:`~shardkey.errors.PolicyDenied`
(exit code 3) carrying the :class:`~shardkey.policy.evaluate.DenialReason`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shardkey.errors import PolicyDenied, ShardKeyError, UsageError

if TYPE_CHECKING:
    from shardkey.policy.evaluate import DenialReason


class PolicyError(ShardKeyError):
    """Root of every error raised by :mod:`shardkey.policy`."""


class PolicyValueError(PolicyError, UsageError):
    """A policy value is malformed or out of the bounds the contract enforces.

    ``path`` names the offending field (``"circles[0].lat_e6"``, ``"groups[1].required"``);
    the message starts with it.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class PolicyFileError(PolicyValueError):
    """A YAML policy file is malformed; ``path`` is the key path (``"approvals[1].required"``)."""


class PolicyDeniedError(PolicyError, PolicyDenied):
    """The Key Access Policy refused a request; ``reason`` says which check failed."""

    def __init__(self, reason: DenialReason) -> None:
        code = f"{reason.name}, code {int(reason)}"
        super().__init__(f"request denied: {reason.description} ({code})")
        self.reason = reason
