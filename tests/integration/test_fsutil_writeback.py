"""Writeback calls on a real filesystem: early writeback, write-behind, and a large output
that hands its page-cache pages back as it goes (``shardkey.fsutil``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from shardkey import fsutil
from tests.support.pagecache import drops_pages, resident_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux-only")

MIB = 1 << 20


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    if not drops_pages(tmp_path):
        pytest.skip(f"{tmp_path}'s filesystem keeps every page (tmpfs): nothing to drop")
    return tmp_path


def test_writeback_of_a_written_file_starts_and_leaves_its_content_intact(tmp_path: Path) -> None:
    assert fsutil._sync_file_range() is not None  # resolved from libc, with 64-bit offsets
    path = tmp_path / "body"
    data = os.urandom(3 * MIB)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        fsutil.start_writeback(handle.fileno())
    assert path.read_bytes() == data


def test_writeback_of_a_bad_descriptor_is_harmless_but_a_wait_on_it_is_an_error() -> None:
    fsutil.start_writeback(-1)  # EBADF from the kernel, ignored: writeback is best effort
    with pytest.raises(OSError, match="Bad file descriptor"):
        fsutil.write_behind(-1)  # an upload's write-behind must not pass a failure off as done


def test_write_behind_puts_the_file_on_disk_and_out_of_the_page_cache(folder: Path) -> None:
    path = folder / "shard"
    data = os.urandom(4 * MIB)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        assert resident_pages(path) == 4 * MIB // os.sysconf("SC_PAGE_SIZE")
        fsutil.write_behind(handle.fileno())
        assert resident_pages(path) == 0
    assert path.read_bytes() == data


def test_a_page_recycler_keeps_at_most_two_windows_cached_and_writes_every_byte(folder: Path) -> None:
    window = 1 * MIB
    data = os.urandom(10 * MIB + 12345)
    path = folder / "restored"
    with open(path, "wb") as handle:
        sink = fsutil.PageRecycler(handle, window=window)
        for at in range(0, len(data), 300_001):  # pieces that straddle every window edge
            sink.write(memoryview(data)[at:at + 300_001])
        handle.flush()
        behind = sink._previous[0] if sink._previous else 0
        assert behind >= 8 * MIB  # all but the last two windows were handed back
        assert resident_pages(path, 0, behind) == 0
        assert resident_pages(path, behind) > 0  # the newest are left to the final fsync
        os.fsync(handle.fileno())
    assert path.read_bytes() == data
