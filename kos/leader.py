"""Which replica acts on which request, and when; the persisted set of requests in flight.

Replicas share one HPKE keystore and are listed in the same order in every replica's
settings. The leader of request ``r`` is ``replicas[r % len(replicas)]``; the replica
``k`` places after it (cyclically) has rank ``k`` and acts only once the chain time
(latest block timestamp, never the host clock) reaches ``approvedAt + k *
takeover_after``. The contract accepts one token per (request, holder), so two replicas
acting at once waste a transaction but never issue twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from shardkey.fsutil import atomic_write_bytes


def leader_of(replicas: Sequence[str], request_id: int) -> str:
    """The replica that acts first on ``request_id``."""
    return replicas[request_id % len(replicas)]


def rank_of(replicas: Sequence[str], me: str, request_id: int) -> int:
    """How many takeover periods ``me`` waits for ``request_id`` (0 for the leader)."""
    return (replicas.index(me) - request_id % len(replicas)) % len(replicas)


def acts_from(replicas: Sequence[str], me: str, request_id: int, approved_at: int,
              takeover_after: int) -> int:
    """Chain time from which ``me`` acts on a request approved at ``approved_at``."""
    return approved_at + rank_of(replicas, me, request_id) * takeover_after


class PendingSet:
    """Request ids seen approved whose work is not finished, saved atomically on change.

    A request joins when its ``RetrievalApproved`` event is handled (flushed before the
    event cursor is saved past it) and leaves once every token is issued, or it is denied,
    completed, expired or its dataset revoked. A crash between the two loses nothing:
    the request is still here at restart, and every action re-checks the chain first.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dirty = False
        self._ids: set[int] = set()
        if path.exists():
            data = json.loads(path.read_text())
            self._ids = {int(i) for i in data.get("pending", [])}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._ids))

    def add(self, request_id: int) -> None:
        """Add a request; :meth:`flush` makes it durable (the watcher calls it before it
        saves its cursor past the approval)."""
        if request_id not in self._ids:
            self._ids.add(request_id)
            self._dirty = True

    def flush(self) -> None:
        """Save if anything was added since the last save."""
        if self._dirty:
            self.save()

    def discard(self, request_ids: Iterable[int]) -> None:
        """Remove requests and save once (no write if none was there)."""
        gone = self._ids.intersection(request_ids)
        if gone:
            self._ids -= gone
            self.save()

    def save(self) -> None:
        """Write the set atomically (0600)."""
        body = json.dumps({"pending": sorted(self._ids)}).encode()
        atomic_write_bytes(self.path, body, mode=0o600)
        self._dirty = False
