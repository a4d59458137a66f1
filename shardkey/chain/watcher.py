"""Event watcher: confirmations depth, reorg detection, a persistent cursor.

The watcher hands each event of the ShardKey contracts, once it is ``confirmations``
blocks deep, to the handler registered for its name, in chain order. It asks the node for
the events it has handlers for only (their ``topic0`` values in one filter): a KOS member
reads approvals, not every release of a burst with its sealed envelopes. It saves its cursor
(block, log index, recent block hashes) atomically at the end of every range that had
events, at most ``save_every`` seconds apart within a long range, and when a handler
raises; a range without events is saved at most every ``idle_save_every`` seconds (an
fsync per block per agent was most of an idle agent's cost). Services register
``before_save`` hooks that make their own state durable first (the KOS's pending set),
so a cursor on disk never runs ahead of what was derived from the events before it.
A crash resumes from the last saved position: events handled since (at most
``save_every`` seconds of them) are handled again, and handlers are idempotent.

Reorgs: the cursor remembers the hashes of the last ``reorg_window`` blocks it
processed. A reorg shallower than ``confirmations`` never reaches a handler. A deeper
one (a processed block whose hash changed) rewinds the cursor to the newest remembered
block whose hash still matches and processes again from there; handlers are idempotent
(each checks on chain whether its action is still needed), so nothing happens twice.
When no remembered block matches, the cursor goes back ``reorg_window`` blocks before
the oldest one it remembers, and the reorg is logged as an error.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shardkey.chain.connection import ChainClient
from shardkey.chain.errors import ChainError
from shardkey.chain.events import ChainEvent, EventDecoder, HasAbi
from shardkey.chain.logs import Topics
from shardkey.faults import crash_point
from shardkey.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

Handler = Callable[[ChainEvent], None]


@dataclass
class Cursor:
    """Where the watcher stands: events up to (block, log_index) are handled."""

    block: int
    log_index: int = -1  # -1: block `block` completely handled
    hashes: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, start_block: int) -> Cursor:
        """Read a cursor file, or start just before ``start_block``."""
        if not path.exists():
            return cls(block=start_block - 1)
        data = json.loads(path.read_text())
        return cls(block=int(data["block"]), log_index=int(data["log_index"]),
                   hashes={int(k): v for k, v in data.get("hashes", {}).items()})

    def save(self, path: Path) -> None:
        """Write the cursor atomically (temp file, fsync, rename)."""
        data = {"block": self.block, "log_index": self.log_index,
                "hashes": {str(k): v for k, v in sorted(self.hashes.items())}}
        atomic_write_bytes(path, json.dumps(data).encode(), mode=0o600)


class EventWatcher:
    """Polls the logs in chunks the provider accepts and dispatches confirmed events."""

    def __init__(self, client: ChainClient, contracts: Mapping[str, HasAbi], cursor_path: Path,
                 *, start_block: int, confirmations: int = 1,
                 reorg_window: int = 128, save_every: float = 1.0, idle_save_every: float = 10.0):
        self.client = client
        self.decoder = EventDecoder(contracts)
        self.cursor_path = cursor_path
        self.start_block = start_block
        self.cursor = Cursor.load(cursor_path, start_block)
        self.confirmations = confirmations
        self.reorg_window = reorg_window
        self.handlers: dict[str, Handler] = {}
        self.save_every = save_every
        self.idle_save_every = idle_save_every
        self._before_save: list[Callable[[], None]] = []
        self._saved_at = time.monotonic()
        self._unsaved = False  # events handled since the cursor was last saved
        # (number, hash) of the head a poll last read up to completely: while the head is the
        # same block, nothing was added and nothing reorganised (a block's hash commits to all
        # before it), so a poll is one call.
        self._polled_head: tuple[int, bytes] | None = None
        self.head = 0  # the head block number the last poll read (its callers need no call of their own)

    def on(self, event_name: str, handler: Handler) -> None:
        """Register the handler of one event name (one handler per name); ``ValueError`` for
        a name no watched contract emits."""
        self.decoder.topics([event_name])
        self.handlers[event_name] = handler

    def before_save(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before every cursor save (to make handler state durable first)."""
        self._before_save.append(hook)

    def save(self) -> None:
        """Make handler state durable (the hooks), then the cursor."""
        for hook in self._before_save:
            hook()
        self.cursor.save(self.cursor_path)
        self._saved_at = time.monotonic()
        self._unsaved = False

    def poll_once(self) -> int:
        """Handle every confirmed event not yet handled; return how many were handled.

        The range is read in chunks the provider accepts
        (:meth:`~shardkey.chain.connection.ChainClient.scan_logs`); the cursor moves to the end
        of each chunk as it is handled, so a provider that refuses or lags part-way leaves
        the cursor after the last chunk read, and the next poll resumes there.
        """
        head = self.client.latest_block()
        self.head = head["number"]
        seen = (head["number"], head["hash"])
        if seen == self._polled_head:
            return 0
        self._check_reorg()
        safe_head = head["number"] - self.confirmations
        handled = 0
        start = self.cursor.block if self.cursor.log_index != -1 else self.cursor.block + 1
        if start > safe_head:
            self._polled_head = seen
            return 0
        if not self.handlers:  # nothing to hand on: the range is read, no log asked for
            self._finish_range(safe_head)
            self._polled_head = seen
            return 0
        topics: Topics = [self.decoder.topics(self.handlers)]
        for _first, last, logs in self.client.scan_logs(self.decoder.addresses, start, safe_head, topics):
            for event in self.decoder.decode_all(logs):
                if event.block_number == self.cursor.block and \
                        event.log_index <= self.cursor.log_index:
                    continue  # handled before a restart
                handler = self.handlers.get(event.name)
                if handler is not None:
                    try:
                        handler(event)
                    except BaseException:
                        if self._unsaved:  # keep the progress before this event
                            self.save()
                        raise
                    crash_point("watcher.after_handler")
                    handled += 1
                    self._unsaved = True
                self.cursor.block, self.cursor.log_index = event.block_number, event.log_index
                if self._unsaved and time.monotonic() - self._saved_at >= self.save_every:
                    self.save()
            self._finish_range(last)
        if self.cursor.block >= safe_head and self.cursor.log_index == -1:
            self._polled_head = seen  # all read: a provider lagging part-way ends a poll early
        return handled

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Poll until ``stop`` is set; a failing poll is logged and retried."""
        while not stop.is_set():
            try:
                self.poll_once()
            except ChainError as exc:  # the provider's trouble: no traceback needed
                log.warning("event poll failed; retrying: %s", exc)
                stop.wait(min(5.0, interval * 4))
                continue
            except Exception:
                log.exception("event poll failed; retrying")
                stop.wait(min(5.0, interval * 4))
                continue
            stop.wait(interval)

    def _finish_range(self, end: int) -> None:
        block_hash = self.client.block_hash(end)
        if block_hash is None:
            raise ChainError(f"block {end} vanished while it was read (a reorg?); polling again")
        self.cursor.block, self.cursor.log_index = end, -1
        self.cursor.hashes[end] = block_hash.hex()
        for old in [b for b in self.cursor.hashes if b < end - self.reorg_window]:
            del self.cursor.hashes[old]
        if self._unsaved or time.monotonic() - self._saved_at >= self.idle_save_every:
            self.save()

    def _check_reorg(self) -> None:
        if not self.cursor.hashes:
            return
        for number in sorted(self.cursor.hashes, reverse=True):
            found = self.client.block_hash(number)  # None: gone, the chain is shorter now
            current = None if found is None else found.hex()
            if current == self.cursor.hashes[number]:
                if number != max(self.cursor.hashes):
                    self._rewind(number)
                return
        # No remembered block survived: go back a whole window before the oldest one.
        target = max(self.start_block - 1, min(self.cursor.hashes) - self.reorg_window)
        log.error("reorg replaced every remembered block; rewinding to block %d", target)
        self._rewind(target)

    def _rewind(self, block: int) -> None:
        self._polled_head = None
        log.warning("reorg below the confirmations depth: rewinding cursor from block %d to %d "
                    "(handlers are idempotent)", self.cursor.block, block)
        self.cursor.block, self.cursor.log_index = block, -1
        self.cursor.hashes = {b: h for b, h in self.cursor.hashes.items() if b <= block}
        self.save()
