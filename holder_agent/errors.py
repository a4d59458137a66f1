"""Errors of the holder agent: one root, :class:`HolderError`."""

from __future__ import annotations

from shardkey.errors import ShardKeyError


class HolderError(ShardKeyError):
    """Root of every error the holder agent raises on purpose."""


class StorageError(HolderError):
    """A storage operation could not be carried out."""


class QuotaExceededError(StorageError):
    """An upload would take an account's staged bytes over its quota."""


class ContentConflictError(StorageError):
    """An upload differs from data already committed under the same name."""


class CustodyError(HolderError):
    """Staged data does not match what a registration commits to."""


class ApiError(HolderError):
    """An HTTP request is refused: ``status``, a short ``code`` and a ``detail``."""

    def __init__(self, status: int, code: str, detail: str):
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(f"{status} {code}: {detail}")


class InvalidNameError(StorageError):
    """A dataset id, shard index or account is not in its one accepted form."""


class PayloadTooLargeError(StorageError):
    """An upload body is larger than the configured maximum."""


class BodyMismatchError(StorageError):
    """An upload body's length or SHA-256 differs from what its signed headers declared."""


class StagingFullError(QuotaExceededError):
    """An upload would take the staged bytes of all accounts together over the global cap."""


class CapacityExceededError(StorageError):
    """An upload would take the holder past its allocated space (``capacity_bytes``) or its
    disk's free space below ``reserve_free_bytes``."""
