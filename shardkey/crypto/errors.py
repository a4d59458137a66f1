"""Errors raised by :mod:`shardkey.crypto`.

Every class derives from :class:`CryptoError` (itself a :class:`ShardKeyError`). Errors
caused by bad caller input also derive from :class:`~shardkey.errors.UsageError` (exit
code 2); failures to decrypt, authenticate or rebuild data derive from
:class:`~shardkey.errors.RestoreError` (exit code 4).

Messages name *what* is wrong (chunk number, shard index, fragment x-coordinate,
field) and never contain key material, shares or plaintext.
"""

from __future__ import annotations

from shardkey.errors import RestoreError, ShardKeyError, UsageError


class CryptoError(ShardKeyError):
    """Root of every error raised by :mod:`shardkey.crypto`."""


class CryptoInputError(CryptoError, UsageError):
    """A parameter or input value is malformed (wrong length, out of range, ...)."""


class CryptoIntegrityError(CryptoError, RestoreError):
    """Data failed authentication or integrity checks, or could not be rebuilt."""


# --- erasure coding -------------------------------------------------------------


class ErasureParameterError(CryptoInputError):
    """Invalid erasure-coding parameters (k, p, shard_size, length)."""


class ErasureDecodeError(CryptoIntegrityError):
    """A stripe could not be rebuilt (too few shards, wrong shard size or position)."""


# --- STREAM shard encryption ----------------------------------------------------


class ShardDecryptionError(CryptoIntegrityError):
    """A shard ciphertext is malformed or failed authentication.

    ``shard_index`` and ``chunk`` (``None`` for header errors) name the failing place.
    """

    def __init__(self, message: str, *, shard_index: int, chunk: int | None = None) -> None:
        super().__init__(message)
        self.shard_index = shard_index
        self.chunk = chunk


class ShardHeaderError(ShardDecryptionError):
    """The 15-byte STREAM header is missing, truncated or invalid."""


class StreamStateError(CryptoInputError):
    """A streaming encryptor/decryptor was used after it finished or failed."""


# --- Shamir ---------------------------------------------------------------------


class ShamirParameterError(CryptoInputError):
    """Invalid Shamir parameters (t, n, secret length)."""


class ShareError(CryptoIntegrityError):
    """Shares cannot be combined (too few, duplicate x, x = 0, inconsistent lengths)."""


class FragmentCommitmentError(CryptoIntegrityError):
    """A fragment does not match its commitment, or a holder's fragments_root differs.

    ``x`` is the share x-coordinate (holder position ``x - 1``); ``shard_index`` is
    set when a single fragment is named.
    """

    def __init__(self, message: str, *, x: int, shard_index: int | None = None) -> None:
        super().__init__(message)
        self.x = x
        self.holder_position = x - 1
        self.shard_index = shard_index


# --- Merkle ---------------------------------------------------------------------


class MerkleError(CryptoInputError):
    """Invalid Merkle input (no leaves, wrong node length, index out of range)."""


# --- fragment bundles -----------------------------------------------------------


class BundleError(CryptoIntegrityError):
    """A fragment bundle is malformed or failed authentication."""


class BundleVersionError(BundleError):
    """Unknown bundle (or wrapped bundle) version byte."""


class BundleTruncatedError(BundleError):
    """A bundle is shorter than its fixed header."""


class BundleCountError(BundleError):
    """The entry count does not match the bundle length."""


class BundleOrderError(BundleError):
    """Entries are not strictly increasing by shard index."""


class BundleMismatchError(BundleError):
    """A bundle belongs to a different dataset or x-coordinate than expected."""


class BundleUnwrapError(BundleError):
    """AES-GCM authentication of a wrapped bundle failed (wrong key, dataset, x, or tamper)."""


# --- HPKE -----------------------------------------------------------------------


class HpkeKeyError(CryptoInputError):
    """A serialized HPKE key, suite id or info field is malformed."""


class HpkeDecryptionError(CryptoIntegrityError):
    """A sealed blob failed to open (wrong key, wrong info, tampered, or malformed)."""


# --- keyless rebuild ------------------------------------------------------------


class ShardIntegrityError(CryptoIntegrityError):
    """A shard does not match its registered SHA-256 (or Merkle leaf); ``shard_index`` names it."""

    def __init__(self, message: str, *, shard_index: int) -> None:
        super().__init__(message)
        self.shard_index = shard_index


class ShardRebuildError(CryptoIntegrityError):
    """Lost shards could not be rebuilt (too few good shards, mixed stripes, a mismatch)."""


# --- threshold KOS committee ----------------------------------------------------


class CommitteeInputError(CryptoInputError):
    """Bad committee deal or envelope input (threshold, sizes, lengths, addresses)."""


class CommitteeThresholdError(CryptoIntegrityError):
    """Fewer verified committee shares than the threshold; ``bad_members`` names the rejected ones."""

    def __init__(self, message: str, *, bad_members: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.bad_members = bad_members


class ShareRejectedError(CryptoIntegrityError):
    """A committee member's share envelope was rejected; ``member`` names the member."""

    def __init__(self, message: str, *, member: str) -> None:
        super().__init__(message)
        self.member = member


class ShareEnvelopeError(ShareRejectedError):
    """The envelope does not decode, or is for another request, dataset, holder, member or epoch."""


class ShareSignatureError(ShareRejectedError):
    """The envelope's signature does not recover the member (a claim; not provable on chain)."""


class ShareCommitmentMismatch(ShareRejectedError):
    """A share signed by its member does not match its commitment (provable: ``proveWrongShare``).

    ``envelope`` is the decoded :class:`~shardkey.crypto.committee_envelope.ShareEnvelope`, the evidence.
    """

    def __init__(self, message: str, *, member: str, envelope: object) -> None:
        super().__init__(message, member=member)
        self.envelope = envelope
