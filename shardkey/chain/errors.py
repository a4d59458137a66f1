"""Errors raised by the chain adapters."""

from __future__ import annotations

from typing import Any

from shardkey.errors import ShardKeyError, UsageError


class ChainError(ShardKeyError):
    """The chain could not be reached or answered something unexpected."""


class TransactionReverted(ChainError):
    """A transaction or call reverted; ``error`` names the contract's custom error.

    The contracts revert only on input they refuse (a malformed or disallowed call;
    policy failures are recorded, not reverted), so this is a usage error (exit 2).
    """

    exit_code = 2

    def __init__(self, error: str, args: dict[str, Any] | None = None, tx: str | None = None):
        self.error = error
        self.error_args = dict(args or {})
        self.tx = tx
        detail = ", ".join(f"{k}={_short(v)}" for k, v in self.error_args.items())
        where = f" (tx {tx})" if tx else ""
        super().__init__(f"reverted: {error}({detail}){where}")


class UndecodableLog(ChainError):
    """A log from a watched contract matched no known event: the agent stops loudly."""


class DeploymentError(UsageError):
    """The deployment file is missing or names contracts that are not on this chain."""


def _short(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)
