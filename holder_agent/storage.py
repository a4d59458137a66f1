"""The holder's disk: a staging area per uploading account, and committed datasets.

Layout under ``data_dir``::

    incoming/<random>                          upload bodies being received (cleared at start)
    staging/<uploader>/<dataset_hex>/shards/<index>
    staging/<uploader>/<dataset_hex>/bundle
    datasets/<dataset_hex>/shards/<index>      committed: custody taken
    datasets/<dataset_hex>/bundle
    datasets/<dataset_hex>/bundles/<epoch>     a re-dealt fragment epoch's bundle (epoch >= 2)

Every name is built from a validated value (checksummed address, 64 lowercase hex,
decimal index), never from raw request text. Staging is charged to the account whose
signature verified, before a body byte is read: the declared length is reserved at
once against that account's quota and against the global cap of all accounts, and every
staged file costs at least ``min_charge`` bytes (an empty file still takes an inode).
A body that turns out longer, shorter or other than declared is discarded.

Capacity: the holder's allocated space (``capacity_bytes``: committed plus staged plus in
flight) and the free disk space it keeps (``reserve_free_bytes``) are checked when an
upload begins (its declared size) and again before its body is staged; a refusal is
:class:`CapacityExceededError` and nothing is kept.

Every write is atomic: a body is streamed into ``incoming/`` then renamed into staging.
Staging is not made durable file by file (docs/PERFORMANCE.md: an fsync per shard
dominated uploads); custody is: before staged files become committed they are flushed
in one barrier (``syncfs``, or an fsync per file when there are few), their hashes are
re-checked, and the directories are fsynced after the renames. Committed files are
never rewritten in place, so an open file always reads one
consistent version.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from eth_utils.address import is_checksum_address

from holder_agent.errors import (
    BodyMismatchError,
    CapacityExceededError,
    ContentConflictError,
    CustodyError,
    InvalidNameError,
    PayloadTooLargeError,
    QuotaExceededError,
    StagingFullError,
)
from holder_agent.expectations import Expectations, registration_of
from shardkey.directfile import DirectSink
from shardkey.faults import crash_point
from shardkey.fsutil import drop_cached, fsync_dir, start_writeback, syncfs, write_behind

log = logging.getLogger(__name__)

BUNDLE = "bundle"
Item = int | str  # a shard index, BUNDLE (fragment epoch 1), or bundle_item(epoch) of a re-deal
MAX_EPOCH = 2**32 - 1


def bundle_item(epoch: int) -> str:
    """The storage item of a fragment epoch's bundle (epoch 1, the registration's: BUNDLE)."""
    if not 1 <= epoch <= MAX_EPOCH:
        raise InvalidNameError(f"not a fragment epoch: {epoch}")
    return BUNDLE if epoch == 1 else f"{BUNDLE}.{epoch}"


def is_bundle(item: Item) -> bool:
    """Whether ``item`` is a bundle of some fragment epoch."""
    return isinstance(item, str) and (item == BUNDLE or item.startswith(BUNDLE + "."))
MAX_SHARD_INDEX = 2**32 - 1
_DATASET_RE = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")
_INDEX_RE = re.compile(r"[0-9]{1,10}")
_READ_CHUNK = 1 << 20
_SYNCFS_ABOVE = 4  # files made durable at once before syncfs replaces per-file fsync
MIN_WRAPPED_BUNDLE = 1 + 12 + 16


@functools.lru_cache(maxsize=1024)
def _is_checksummed(address: str) -> bool:
    """Whether ``address`` is a checksummed address; each text is checked once (a handful of
    uploaders: checksumming per path lookup cost a keccak each, several per upload)."""
    return bool(is_checksum_address(address))


def parse_dataset_id(text: str) -> bytes:
    """``0x`` + 64 hex digits (or 64 hex digits) as 32 bytes; anything else is refused."""
    match = _DATASET_RE.fullmatch(text) if text.isascii() else None
    if match is None:
        raise InvalidNameError("dataset id must be 0x followed by 64 hex digits")
    return bytes.fromhex(match.group(1))


def parse_shard_index(text: str) -> int:
    """A decimal shard index below 2**32; anything else is refused."""
    if not text.isascii() or _INDEX_RE.fullmatch(text) is None or int(text) > MAX_SHARD_INDEX:
        raise InvalidNameError("shard index must be a decimal number below 2**32")
    return int(text)


def file_sha256(path: Path) -> bytes:
    """SHA-256 of a file, read in chunks."""
    with open(path, "rb") as handle:
        return hash_handle(handle)


def hash_handle(handle: BinaryIO) -> bytes:
    """SHA-256 of an open file from its current position to the end."""
    digest = hashlib.sha256()
    while chunk := handle.read(_READ_CHUNK):
        digest.update(chunk)
    return digest.digest()


class Upload:
    """One upload body being streamed to ``incoming/``; its declared size is reserved."""

    def __init__(self, store: Store, uploader: str, declared_sha256: bytes, declared_length: int,
                 reserved: int, direct: bool = False):
        self.store = store
        self.uploader = uploader
        self.declared_sha256 = declared_sha256
        self.declared_length = declared_length
        self.reserved = reserved  # charge held in flight until commit or discard
        self.size = 0
        self.path = store.incoming / uuid.uuid4().hex
        self._digest = hashlib.sha256()
        # Staged bodies are not fsynced one by one (an fsync costs tens of ms per file):
        # staging promises nothing. take_custody() makes the data durable in one barrier
        # before custody is confirmed, and re-checks every hash, so a body torn by a crash
        # is refused there, never committed. With drop_cache, seal() writes the body to
        # disk and drops its pages (write-behind), so the barrier has little left to do;
        # a ``direct`` body skips the page cache altogether (DirectSink).
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            self._sink = DirectSink(self._fd, direct=direct and store.drop_cache)
        except BaseException:
            os.close(self._fd)
            self.path.unlink(missing_ok=True)
            raise

    @property
    def sha256(self) -> bytes:
        """SHA-256 of the bytes written so far."""
        return self._digest.digest()

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append a chunk; raise when the body grows over its declared length."""
        self._admit(len(chunk))
        self.size += len(chunk)
        self._digest.update(chunk)
        self._sink.write(chunk)

    def receive(self, receive_into: Callable[[memoryview], int], limit: int) -> int:
        """Receive at most ``limit`` more bytes of the body with ``receive_into`` (a socket's
        ``recv_into``: fills a view, returns the count) straight into the buffer they are
        written from; the count, 0 at the end of the stream."""
        self._admit(limit)
        # Released on the way out, a failed receive's too (the client gone): a view kept alive
        # by the traceback would stop discard() from unmapping the buffer.
        with self._sink.room(limit) as room:
            got = receive_into(room)
            if got:
                self.size += got
                with room[:got] as received:
                    self._digest.update(received)
                self._sink.commit(got)
        return got

    def _admit(self, more: int) -> None:
        if self._fd is None:
            raise RuntimeError("upload already closed")
        if self.size + more > self.declared_length:
            raise BodyMismatchError(f"body longer than its declared {self.declared_length} bytes")

    def seal(self) -> None:
        """Write out and close the body file (blocking: run it off the event loop). With the
        store's ``drop_cache`` the body is on disk now and none of its pages stay in the page
        cache (an error of that write, such as a full disk, is raised here); without, its
        writeback is started in the background."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                self._sink.finish()
                if self._sink.refused:
                    self.store.direct_refused()
                (write_behind if self.store.drop_cache else start_writeback)(fd)
            finally:
                self._sink.close()
                os.close(fd)

    def check(self) -> None:
        """Raise :class:`BodyMismatchError` unless the body is exactly the declared one."""
        if self.size != self.declared_length:
            raise BodyMismatchError(f"body of {self.size} bytes, {self.declared_length} declared")
        if self.sha256 != self.declared_sha256:
            raise BodyMismatchError("body SHA-256 differs from the declared one")

    def discard(self) -> None:
        """Drop the body (whatever state it is in) and release its reservation."""
        fd, self._fd = self._fd, None
        if fd is not None:
            self._sink.close()
            os.close(fd)
        self.path.unlink(missing_ok=True)
        self.store._add_inflight(self.uploader, -self.reserved)
        self.reserved = 0
        self.size = 0


class Store:
    """Staging and committed storage of one holder (thread-safe)."""

    def __init__(self, data_dir: Path, quota_bytes: int, total_bytes: int | None = None,
                 min_charge: int = 0, capacity_bytes: int | None = None, reserve_free_bytes: int = 0,
                 disk_free: Callable[[Path], int] | None = None, drop_cache: bool = True):
        self.root = Path(data_dir)
        # Shards leave the page cache once written (write-behind) and once read: a holder
        # stores far more than its memory and serves each shard rarely (as OpenStack
        # Swift's object server drops its writes and large reads).
        self.drop_cache = drop_cache
        self.capacity_bytes = capacity_bytes  # allocated space; None: the disk is the limit
        self.reserve_free_bytes = reserve_free_bytes
        self._disk_free = disk_free or _disk_free
        self.incoming = self.root / "incoming"
        self.staging = self.root / "staging"
        self.datasets = self.root / "datasets"
        self.quota_bytes = quota_bytes
        self.total_bytes = total_bytes  # global cap over every account; None: unbounded
        self.min_charge = min_charge
        for folder in (self.root, self.incoming, self.staging, self.datasets):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in self.incoming.iterdir():
            if leftover.is_file():
                leftover.unlink()
        self._lock = threading.RLock()
        self._usage: dict[str, int] = {}  # charged staged bytes of every account with any
        self._inflight: dict[str, int] = {}
        self._total = 0  # sum of _usage and _inflight
        for uploader_dir in self.staging.iterdir():
            if uploader_dir.is_dir():
                self._rescan(uploader_dir.name)
        self._committed = sum(p.stat().st_size for p in self.datasets.rglob("*") if p.is_file())
        # SHA-256 of staged files as computed while they streamed in, keyed by path and
        # checked against (inode, size, mtime): custody need not read them all again.
        # Memory only, so after a restart every staged file is re-hashed.
        self._staged_digests: dict[Path, tuple[tuple[int, int, int], bytes]] = {}
        # The digests of shards custody committed, with when they were known: the first
        # download of a shard need not read it again (:meth:`committed_digest`).
        self._committed_digests: dict[tuple[bytes, int], tuple[tuple[int, int, int], bytes, float]] = {}
        # A staged bundle announces its registration: owners upload it last, just before they
        # register, and the agent polls fast until the registration is handled.
        self.expected = Expectations()
        self._direct_refusal_logged = False

    def direct_refused(self) -> None:
        """An upload's file refused ``O_DIRECT``: say so once (the holder then pays the page
        cache's CPU for every byte it receives)."""
        if not self._direct_refusal_logged:
            self._direct_refusal_logged = True
            log.warning("the filesystem of data_dir refuses O_DIRECT: uploads are written through "
                        "the page cache (more CPU per byte received)",
                        extra={"fields": {"data_dir": str(self.root)}})

    # --- paths ----------------------------------------------------------------

    @staticmethod
    def _item_rel(item: Item) -> Path:
        if item == BUNDLE:
            return Path(BUNDLE)
        if isinstance(item, str) and item.startswith(BUNDLE + ".") and _INDEX_RE.fullmatch(item[7:]):
            return Path("bundles") / str(int(item[7:]))
        if isinstance(item, int) and 0 <= item <= MAX_SHARD_INDEX:
            return Path("shards") / str(item)
        raise InvalidNameError(f"not a storage item: {item!r}")

    def staged_dir(self, uploader: str, dataset_id: bytes) -> Path:
        """Folder of one uploader's staged data for one dataset."""
        if not _is_checksummed(uploader):
            raise InvalidNameError("uploader must be a checksummed address")
        if len(dataset_id) != 32:
            raise InvalidNameError("dataset id must be 32 bytes")
        return self.staging / uploader / dataset_id.hex()

    def committed_dir(self, dataset_id: bytes) -> Path:
        """Folder of a committed dataset."""
        if len(dataset_id) != 32:
            raise InvalidNameError("dataset id must be 32 bytes")
        return self.datasets / dataset_id.hex()

    def staged_path(self, uploader: str, dataset_id: bytes, item: Item) -> Path:
        """Where a staged shard or bundle lives."""
        return self.staged_dir(uploader, dataset_id) / self._item_rel(item)

    def committed_path(self, dataset_id: bytes, item: Item) -> Path:
        """Where a committed shard or bundle lives."""
        return self.committed_dir(dataset_id) / self._item_rel(item)

    # --- uploads ----------------------------------------------------------------

    def charge(self, size: int) -> int:
        """Bytes a staged file of ``size`` bytes counts for (at least ``min_charge``)."""
        return max(size, self.min_charge)

    def begin_upload(self, uploader: str, dataset_id: bytes, item: Item, max_bytes: int,
                     declared_sha256: bytes, declared_length: int, direct: bool = False) -> Upload:
        """Start receiving a body of a declared length and hash, charged to ``uploader``
        (whose signature verified) at once; refuse it when it cannot fit. ``direct``: the
        body is written past the page cache (with ``drop_cache``; blocking writes of a few
        MiB, so not on an event loop)."""
        if declared_length > max_bytes:
            raise PayloadTooLargeError(f"body of {declared_length} bytes is larger than {max_bytes}")
        target = self.staged_path(uploader, dataset_id, item)
        with self._lock:
            replacing = self.charge(target.stat().st_size) if target.is_file() else 0
            more = self.charge(declared_length)
            self._check_quota(uploader, more - replacing)
            self._add_inflight(uploader, more)
            try:
                return Upload(self, uploader, declared_sha256, declared_length, more, direct)
            except BaseException:
                self._add_inflight(uploader, -more)
                raise

    def _check_quota(self, uploader: str, more: int) -> None:
        used = self._usage.get(uploader, 0) + self._inflight.get(uploader, 0)
        if used + more > self.quota_bytes:
            raise QuotaExceededError(f"staging quota of {uploader} ({self.quota_bytes} bytes) "
                                     "exhausted")
        if self.total_bytes is not None and self._total + more > self.total_bytes:
            raise StagingFullError(f"the holder's staging area ({self.total_bytes} bytes for all "
                                   "accounts) is full")
        self._check_capacity(more)

    def _check_capacity(self, more: int) -> None:
        """Refuse ``more`` bytes past the allocated space or into the free-disk reserve."""
        if self.capacity_bytes is not None and self._committed + self._total + more > self.capacity_bytes:
            raise CapacityExceededError(
                f"the holder's allocated space ({self.capacity_bytes} bytes, capacity_bytes) is "
                f"used up: {self._committed} stored, {self._total} staged")
        free = self._disk_free(self.root)
        if free - max(more, 0) < self.reserve_free_bytes:
            raise CapacityExceededError(
                f"the holder keeps {self.reserve_free_bytes} bytes of its disk free "
                f"(reserve_free_bytes); {free} bytes are free")

    def capacity(self) -> dict[str, int | None]:
        """Space of this holder: ``used`` (stored + staged), ``allocated`` (``capacity_bytes``,
        None when unset), ``free`` (what an upload may still take, reserve and allocation
        both counted), ``stored`` and ``staged``."""
        with self._lock:
            stored, staged = self._committed, self._total
        disk = max(0, self._disk_free(self.root) - self.reserve_free_bytes)
        if self.capacity_bytes is not None:
            disk = min(disk, max(0, self.capacity_bytes - stored - staged))
        return {"used": stored + staged, "allocated": self.capacity_bytes, "free": disk,
                "stored": stored, "staged": staged}

    def _add_inflight(self, uploader: str, delta: int) -> None:
        with self._lock:
            value = self._inflight.get(uploader, 0) + delta
            self._total += value - self._inflight.get(uploader, 0)
            if value > 0:
                self._inflight[uploader] = value
            else:
                self._inflight.pop(uploader, None)

    def _set_usage(self, uploader: str, value: int) -> None:
        self._total += value - self._usage.get(uploader, 0)
        if value > 0:
            self._usage[uploader] = value
        else:
            self._usage.pop(uploader, None)

    def _rescan(self, uploader: str) -> None:
        """Recount an account's charged staged bytes from the disk."""
        folder = self.staging / uploader
        value = sum(self.charge(p.stat().st_size) for p in folder.rglob("*") if p.is_file()) \
            if folder.is_dir() else 0
        self._set_usage(uploader, value)

    def staged_usage(self, uploader: str | None = None) -> int:
        """Charged bytes staged and in flight: of one account, or of all (``None``)."""
        with self._lock:
            if uploader is None:
                return self._total
            return self._usage.get(uploader, 0) + self._inflight.get(uploader, 0)

    def commit_upload(self, upload: Upload, dataset_id: bytes, item: Item) -> bool:
        """Move a sealed body into the uploader's staging area.

        Returns False when the same content is already committed (nothing changes);
        raises :class:`ContentConflictError` when different content is committed.
        """
        upload.check()
        with self._lock:
            if self._disk_free(self.root) < self.reserve_free_bytes:
                raise CapacityExceededError(
                    f"the holder keeps {self.reserve_free_bytes} bytes of its disk free "
                    "(reserve_free_bytes); the upload is not kept")
            committed = self.committed_path(dataset_id, item)
            if committed.is_file():
                if file_sha256(committed) != upload.sha256:
                    raise ContentConflictError(f"{_label(item)} of this dataset is committed "
                                               "with different content")
                return False
            target = self.staged_path(upload.uploader, dataset_id, item)
            old_charge = self.charge(target.stat().st_size) if target.is_file() else 0
            _make_dirs(target.parent, self.staging)
            os.replace(upload.path, target)
            self._remember_digest(target, upload.sha256)
            crash_point("holder.after_stage_write")
            charge = self.charge(upload.size)
            self._set_usage(upload.uploader, self._usage.get(upload.uploader, 0) + charge - old_charge)
            self._add_inflight(upload.uploader, -upload.reserved)
            upload.reserved = 0
            if is_bundle(item):
                self.expected.expect(registration_of(dataset_id))
            return True

    # --- custody ----------------------------------------------------------------

    def check_staged(self, owner: str, dataset_id: bytes, expected: Mapping[int, bytes],
                     bundle: bool, epoch: int = 1) -> list[str]:
        """Problems preventing custody (empty when every item is staged or committed intact)."""
        with self._lock:
            return [p for _, _, p in self._plan(owner, dataset_id, expected, bundle, epoch) if p]

    def take_custody(self, owner: str, dataset_id: bytes, expected: Mapping[int, bytes],
                     bundle: bool, epoch: int = 1) -> int:
        """Move the claimed items from ``owner``'s staging into the committed dataset.

        ``expected`` maps each shard index this holder must store to its SHA-256; ``bundle``
        claims the bundle of fragment epoch ``epoch`` too. Returns the number of items
        moved; raises :class:`CustodyError` listing every missing or mismatching item, and
        then changes nothing.
        """
        with self._lock:
            plan = self._plan(owner, dataset_id, expected, bundle, epoch)
            problems = [p for _, _, p in plan if p]
            if problems:
                raise CustodyError("; ".join(problems))
            moves = [(src, dst) for src, dst, _ in plan if src is not None]
            _make_durable([src for src, _ in moves])
            self._committed += sum(src.stat().st_size for src, _ in moves)
            for src, dst in moves:
                _make_dirs(dst.parent, self.datasets)
                self._staged_digests.pop(src, None)
                os.replace(src, dst)
            # _plan checked every moved shard against ``expected`` under this same lock.
            self._keep_committed_digests(dataset_id, {
                int(dst.name): dst for _, dst in moves if dst.parent.name == "shards"}, expected)
            for folder in {dst.parent for _, dst in moves} | {src.parent for src, _ in moves}:
                fsync_dir(folder)
            staged = self.staged_dir(owner, dataset_id)
            if staged.exists():
                shutil.rmtree(staged)
                fsync_dir(staged.parent)
            self._rescan(owner)
            return len(moves)

    def _plan(self, owner: str, dataset_id: bytes, expected: Mapping[int, bytes],
              bundle: bool, epoch: int = 1) -> list[tuple[Path | None, Path, str]]:
        """(staged source or None when already committed, destination, problem or "")."""
        plan: list[tuple[Path | None, Path, str]] = []
        items: list[Item] = [*sorted(expected), *([bundle_item(epoch)] if bundle else [])]
        for item in items:
            dst = self.committed_path(dataset_id, item)
            src = self.staged_path(owner, dataset_id, item)
            if _intact(dst, expected.get(item) if isinstance(item, int) else None):
                plan.append((None, dst, ""))
            elif not src.is_file():
                plan.append((src, dst, f"{_label(item)} not staged"))
            elif not self._staged_intact(src, expected.get(item) if isinstance(item, int) else None):
                plan.append((src, dst, f"{_label(item)} staged with wrong content"))
            else:
                plan.append((src, dst, ""))
        return plan

    def _remember_digest(self, path: Path, digest: bytes) -> None:
        if len(self._staged_digests) >= 65536:
            self._staged_digests.clear()
        self._staged_digests[path] = (_stamp(path), digest)

    def _keep_committed_digests(self, dataset_id: bytes, paths: Mapping[int, Path],
                                expected: Mapping[int, bytes]) -> None:
        if len(self._committed_digests) + len(paths) > 65536:
            self._committed_digests.clear()
        now = time.monotonic()
        for index, path in paths.items():
            self._committed_digests[(dataset_id, index)] = (_stamp(path), expected[index], now)

    def committed_digest(self, key: tuple[bytes, int],
                         stamp: tuple[int, int, int]) -> tuple[bytes, float] | None:
        """The SHA-256 of a shard custody committed, and how many seconds ago it was known,
        once, if the file is still that one (same inode, size and mtime: a rename keeps
        them); None otherwise. :class:`holder_agent.receipts.ShardDigests` asks this
        before it reads a shard to hash it."""
        with self._lock:
            known = self._committed_digests.pop(key, None)
        if known is None or known[0] != stamp:
            return None
        return known[1], time.monotonic() - known[2]

    def _staged_intact(self, path: Path, sha256: bytes | None) -> bool:
        known = self._staged_digests.pop(path, None)
        if sha256 is not None and known is not None and path.is_file() and known[0] == _stamp(path):
            self._staged_digests[path] = known
            return known[1] == sha256
        return _intact(path, sha256)

    def staged_mtime(self, owner: str, dataset_id: bytes) -> float | None:
        """Newest modification time in a staged dataset folder (None when there is none)."""
        folder = self.staged_dir(owner, dataset_id)
        if not folder.is_dir():
            return None
        return max(p.stat().st_mtime for p in [folder, *folder.rglob("*")])

    # --- committed data ---------------------------------------------------------

    def committed_shards(self, dataset_id: bytes) -> list[int]:
        """Indices of the committed shards of a dataset, ascending."""
        folder = self.committed_dir(dataset_id) / "shards"
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())

    def has_bundle(self, dataset_id: bytes, epoch: int | None = None) -> bool:
        """Whether the dataset's wrapped bundle (of ``epoch``; of any epoch when None) is
        committed here."""
        if epoch is None:
            return bool(self.committed_bundles(dataset_id))
        return self.committed_path(dataset_id, bundle_item(epoch)).is_file()

    def committed_bundles(self, dataset_id: bytes) -> list[int]:
        """The fragment epochs whose bundle of this dataset is committed here, ascending."""
        folder = self.committed_dir(dataset_id)
        epochs = [1] if (folder / BUNDLE).is_file() else []
        if (folder / "bundles").is_dir():
            epochs += sorted(int(p.name) for p in (folder / "bundles").iterdir() if p.name.isdigit())
        return epochs

    def committed_datasets(self) -> list[bytes]:
        """The datasets with a committed folder here."""
        return committed_datasets(self.root)

    def delete_dataset(self, dataset_id: bytes) -> int:
        """Delete everything committed of a dataset this holder no longer holds (an exit);
        return the bytes freed."""
        with self._lock:
            folder = self.committed_dir(dataset_id)
            if not folder.is_dir():
                return 0
            freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
            fsync_dir(self.datasets)
            self._committed -= freed
            return freed

    def drop_bundles(self, dataset_id: bytes, keep_epoch: int) -> list[int]:
        """Delete the committed bundles of every fragment epoch but ``keep_epoch`` (a re-deal
        superseded them); return the epochs deleted."""
        dropped = []
        with self._lock:
            for epoch in self.committed_bundles(dataset_id):
                if epoch == keep_epoch:
                    continue
                path = self.committed_path(dataset_id, bundle_item(epoch))
                self._committed -= path.stat().st_size
                path.unlink()
                fsync_dir(path.parent)
                dropped.append(epoch)
        return dropped

    def open_shard(self, dataset_id: bytes, index: int) -> BinaryIO | None:
        """The committed shard opened for reading, or None. With ``drop_cache`` its pages
        leave the page cache when it is closed."""
        path = self.committed_path(dataset_id, index)
        try:
            return io.BufferedReader(_DroppingFile(path)) if self.drop_cache else open(path, "rb")
        except FileNotFoundError:
            return None

    def read_bundle(self, dataset_id: bytes, epoch: int = 1) -> bytes | None:
        """The committed wrapped bundle of fragment epoch ``epoch``, or None."""
        try:
            return self.committed_path(dataset_id, bundle_item(epoch)).read_bytes()
        except FileNotFoundError:
            return None

    # --- garbage collection -------------------------------------------------------

    def gc_staging(self, ttl: float, now: float, keep: Iterable[tuple[str, bytes]] = ()) -> list[str]:
        """Delete staged datasets untouched for ``ttl`` seconds; return what was deleted."""
        kept = {(owner, ds.hex()) for owner, ds in keep}
        removed = []
        with self._lock:
            for uploader_dir in sorted(p for p in self.staging.iterdir() if p.is_dir()):
                for ds_dir in sorted(p for p in uploader_dir.iterdir() if p.is_dir()):
                    if (uploader_dir.name, ds_dir.name) in kept:
                        continue
                    newest = max(p.stat().st_mtime for p in [ds_dir, *ds_dir.rglob("*")])
                    if now - newest > ttl:
                        shutil.rmtree(ds_dir)
                        removed.append(f"{uploader_dir.name}/{ds_dir.name}")
                        self._rescan(uploader_dir.name)
                if not any(uploader_dir.iterdir()):
                    uploader_dir.rmdir()
            if removed:
                fsync_dir(self.staging)
        return removed


def committed_datasets(data_dir: Path) -> list[bytes]:
    """The datasets with a committed folder under a holder's ``data_dir`` (read only: safe
    while the agent runs)."""
    folder = data_dir / "datasets"
    if not folder.is_dir():
        return []
    return sorted(bytes.fromhex(p.name) for p in folder.iterdir()
                  if p.is_dir() and _DATASET_RE.fullmatch(p.name))


def _disk_free(path: Path) -> int:
    """Bytes free for unprivileged writers on the filesystem of ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _label(item: Item) -> str:
    if is_bundle(item):
        return "bundle" if item == BUNDLE else f"bundle of fragment epoch {str(item)[7:]}"
    return f"shard {item}"


class _DroppingFile(io.FileIO):
    """A shard file read once: its pages are dropped from the page cache on close."""

    def __init__(self, path: Path):
        super().__init__(path, "r")

    def close(self) -> None:
        if not self.closed:
            drop_cached(self.fileno())
        super().close()


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _intact(path: Path, sha256: bytes | None) -> bool:
    """A shard file with the expected hash, or a plausible wrapped bundle (``sha256`` None)."""
    if not path.is_file():
        return False
    if sha256 is None:
        with open(path, "rb") as handle:
            head = handle.read(1)
        return head == b"\x01" and path.stat().st_size >= MIN_WRAPPED_BUNDLE
    return file_sha256(path) == sha256


def _make_durable(paths: list[Path]) -> None:
    """Flush staged files to disk before they become custody: one ``syncfs`` of the
    filesystem when there are many (one device flush instead of one per file), else an
    fsync per file."""
    if not paths:
        return
    if len(paths) > _SYNCFS_ABOVE and syncfs(paths[0]):
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _make_dirs(folder: Path, base: Path) -> None:
    """mkdir -p below ``base`` (mode 0700), fsyncing each parent that gained an entry."""
    missing = []
    current = folder
    while not current.exists() and current != base:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
        fsync_dir(path.parent)
