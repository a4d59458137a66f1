"""Errors of the Key Orchestration Service (one root, :class:`KosError`)."""

from __future__ import annotations

from shardkey.errors import ShardKeyError, UsageError


class KosError(ShardKeyError):
    """Base of every error the KOS raises on purpose."""


class KosConfigError(KosError, UsageError):
    """The KOS cannot start as configured (wrong role, wrong key, not a listed replica)."""


class WrapKeyInvalid(KosError):
    """A sealed wrap key of a dataset does not open with the KOS key under its info string.

    Carries the dataset and the fragment holder position, never key material.
    """

    def __init__(self, dataset_id: bytes, position: int) -> None:
        super().__init__(f"sealed wrap key #{position} of dataset 0x{dataset_id.hex()} does not open")
        self.dataset_id = dataset_id
        self.position = position
