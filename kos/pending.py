"""The persisted set of approved requests a KOS committee member has not finished with."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from shardkey.fsutil import atomic_write_bytes


class PendingSet:
    """Request ids seen approved whose work is not finished, saved atomically on change.

    A request joins when its ``RetrievalApproved`` event is handled (flushed before the
    event cursor is saved past it) and leaves once this member's release or denial is
    ``confirmations`` blocks deep, or the request is denied or completed, or its dataset is
    not one this member serves. A crash between the two loses nothing: the request is
    still here at restart, and every action re-checks the chain first.
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
