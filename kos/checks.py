"""What a KOS committee member checks and opens: the HPKE key capability
(:class:`KeyCapability`), the chain reads of one poll (:class:`PollCache`) and the Key Access
Policy check (:class:`KapCheck`, the one policy engine)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from shardkey.chain.attestation import AttestationReader
from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.events import ChainEvent
from shardkey.chain.model import DatasetInfo, RequestInfo
from shardkey.chain.release import release_reason
from shardkey.crypto.errors import HpkeDecryptionError, HpkeKeyError
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.policy import Attestation, DenialReason, Policy

T = TypeVar("T")


class KeyCapability:
    """Capability around an HPKE private key: opens 32-byte secrets, never hands out the key."""

    def __init__(self, key: HpkePrivateKey, chain_id: int) -> None:
        self._key = key
        self._chain_id = chain_id

    def public_key_bytes(self) -> bytes:
        """The HPKE public key (owners seal to it)."""
        return self._key.public_key_bytes()

    def _open32(self, sealed: bytes, info: bytes, refused: Callable[[str], Exception]) -> bytearray:
        """The 32-byte secret sealed under ``info``, in a bytearray the caller must zero after
        use; ``refused(why)`` is raised when it does not open or is not 32 bytes."""
        try:
            opened = self._key.open(sealed, info)
        except (HpkeDecryptionError, HpkeKeyError):
            raise refused("does not open") from None
        secret = bytearray(opened)
        del opened  # an immutable copy cannot be wiped; drop the reference at once
        if len(secret) != 32:
            wipe(secret)
            raise refused("is not 32 bytes")
        return secret


def wipe(buffer: bytearray) -> None:
    """Zero a key buffer in place."""
    buffer[:] = bytes(len(buffer))


class PollCache:
    """Chain reads shared by every request of one poll (datasets, policies, holder keys).

    Lives for one poll only, so a revocation, a policy update or a holder key rotation is
    seen at the next poll. Safe to share between the poll's worker threads.
    """

    def __init__(self, chain: ShardKeyChain) -> None:
        self._chain = chain
        self._lock = threading.Lock()
        self._values: dict[tuple[Any, ...], Any] = {}

    def _get(self, key: tuple[Any, ...], read: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                return cast(T, self._values[key])
        value = read()
        with self._lock:
            return cast(T, self._values.setdefault(key, value))

    def dataset(self, dataset_id: bytes) -> DatasetInfo:
        """The stored dataset."""
        return self._get(("dataset", dataset_id), lambda: self._chain.datasets.dataset(dataset_id))

    def policy(self, dataset_id: bytes, version: int) -> Policy:
        """One policy version of a dataset."""
        return self._get(("policy", dataset_id, version),
                         lambda: self._chain.datasets.policy(dataset_id, version))

    def holder_key(self, holder: str) -> bytes:
        """A holder's registered HPKE public key."""
        return self._get(("holder", holder),
                         lambda: self._chain.holders.holder(holder).hpke_public_key)


class KapCheck:
    """A member's check of a request against its Key Access Policy before releasing shares.

    A thin caller of :func:`shardkey.chain.release.release_reason` (the same code the
    holders run): status, requester and time window at the latest block, the location
    attestation at ``requestedAt`` with its signature decided by
    :mod:`shardkey.chain.attestation` (EOA recovery or an EIP-1271 call), approvals
    recounted per group, then the newest policy version (``KosPolicyMismatch``).
    """

    def __init__(self, chain: ShardKeyChain, start_block: int) -> None:
        self._chain = chain
        self.attestations = AttestationReader(chain, start_block)

    def remember_request(self, event: ChainEvent) -> None:
        """Watcher handler of ``RetrievalRequested``: keep the attestation for later."""
        self.attestations.remember(event)

    def reason(self, req: RequestInfo, dataset: DatasetInfo, now: int, cache: PollCache) -> DenialReason:
        """``NONE`` when the request still meets its policy (and the newest one), else why not."""
        return release_reason(self._chain, req, dataset, now, self.attestations, cache.policy)

    def attestation(self, req: RequestInfo) -> Attestation | None:
        """The request's attestation with the verdict on its signature."""
        return self.attestations.verdict(req)
