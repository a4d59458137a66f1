"""Writeback calls on a real filesystem: early writeback, write-behind (``shardkey.fsutil``);
large outputs and inputs that spare the page cache: a page-recycling writer, direct I/O,
a drop-behind reader (``shardkey.bulkio``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from shardkey import bulkio, fsutil
from tests.support.fsize import raises_efbig
from tests.support.pagecache import resident_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux-only")

MIB = 1 << 20



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


def test_write_behind_puts_the_file_on_disk_and_out_of_the_page_cache(page_cache_folder: Path) -> None:
    path = page_cache_folder / "shard"
    data = os.urandom(4 * MIB)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        assert resident_pages(path) == 4 * MIB // os.sysconf("SC_PAGE_SIZE")
        fsutil.write_behind(handle.fileno())
        assert resident_pages(path) == 0
    assert path.read_bytes() == data


def test_a_page_recycler_keeps_at_most_two_windows_cached_and_writes_every_byte(
        page_cache_folder: Path) -> None:
    window = 1 * MIB
    data = os.urandom(10 * MIB + 12345)
    path = page_cache_folder / "restored"
    with open(path, "wb") as handle:
        sink = bulkio.PageRecycler(handle, window=window)
        for at in range(0, len(data), 300_001):  # pieces that straddle every window edge
            sink.write(memoryview(data)[at:at + 300_001])
        handle.flush()
        behind = sink._previous[0] if sink._previous else 0
        assert behind >= 8 * MIB  # all but the last two windows were handed back
        assert resident_pages(path, 0, behind) == 0
        assert resident_pages(path, behind) > 0  # the newest are left to the final fsync
        os.fsync(handle.fileno())
    assert path.read_bytes() == data


def _write_in_pieces(sink: bulkio.DirectWriter | bulkio.PageRecycler, data: bytes, piece: int) -> None:
    for at in range(0, len(data), piece):
        sink.write(memoryview(data)[at:at + piece])


@pytest.mark.parametrize("tail", [0, 1, 4095, 4097, 12345])
def test_a_direct_writer_writes_every_byte_and_leaves_only_the_last_block_cached(
        page_cache_folder: Path, tail: int) -> None:
    data = os.urandom(3 * MIB + tail)
    path = page_cache_folder / "restored"
    buffers = bulkio.AlignedBuffers(size=MIB)
    with open(path, "wb") as handle:
        sink = bulkio.DirectWriter(handle, buffers=buffers)
        assert sink.direct
        _write_in_pieces(sink, data, 300_001)  # pieces that straddle every buffer edge
        sink.finish()
        assert handle.tell() == len(data)  # the handle knows where the direct writes left it
        handle.flush()
        whole = len(data) - len(data) % bulkio.DIRECT_ALIGN
        assert resident_pages(path, 0, whole) == 0  # never went through the page cache
        assert resident_pages(path, whole) == (1 if tail % bulkio.DIRECT_ALIGN else 0)
        handle.write(b"after")  # buffered writes go on where the direct ones stopped
        os.fsync(handle.fileno())
    assert path.read_bytes() == data + b"after"
    assert len(buffers._free) == 2  # both staging buffers came back


def test_a_direct_writer_returns_its_buffers_and_refuses_writes_once_finished(
        page_cache_folder: Path) -> None:
    buffers = bulkio.AlignedBuffers(size=MIB, keep=2)
    with open(page_cache_folder / "out", "wb") as handle:
        sink = bulkio.DirectWriter(handle, buffers=buffers)
        staging = set(map(id, sink._staging))
        sink.write(b"x" * (MIB + 5000))  # one buffer written, the other partly filled
        sink.finish()
        sink.close()  # a second release is harmless
        assert {id(buffers.take()), id(buffers.take())} == staging  # reused, not mapped afresh
        with pytest.raises(ValueError, match="finished"):
            sink.write(b"more")
    assert (page_cache_folder / "out").read_bytes() == b"x" * (MIB + 5000)


def test_a_direct_writer_falls_back_to_the_page_cache_for_a_handle_inside_a_block(
        page_cache_folder: Path) -> None:
    data = os.urandom(2 * MIB + 7)
    path = page_cache_folder / "restored"
    with open(path, "wb") as handle:
        handle.write(b"header")  # O_DIRECT offsets must be whole blocks: this one is not
        sink = bulkio.DirectWriter(handle, buffers=bulkio.AlignedBuffers(size=MIB))
        assert not sink.direct
        assert isinstance(sink._sink, bulkio.PageRecycler)
        _write_in_pieces(sink, data, 123_457)
        sink.finish()
        handle.flush()
        assert resident_pages(path) > 0
    assert path.read_bytes() == b"header" + data


def test_a_direct_writer_writes_plainly_to_what_is_not_a_regular_file() -> None:
    reader, writer = os.pipe()  # O_DIRECT on a pipe means packet mode: not for a byte stream
    with os.fdopen(reader, "rb") as source, os.fdopen(writer, "wb") as handle:
        sink = bulkio.DirectWriter(handle)
        assert not sink.direct and sink._sink is not None and sink._sink.handle is handle
        sink.write(b"hello, ")
        sink.write(bytearray(b"pipe"))
        sink.finish()
        handle.flush()
        assert source.read(11) == b"hello, pipe"


def test_aligned_buffers_are_page_aligned_whole_blocks_and_kept_up_to_their_limit() -> None:
    with pytest.raises(ValueError, match="multiple of 4096"):
        bulkio.AlignedBuffers(size=5000)
    buffers = bulkio.AlignedBuffers(size=2 * bulkio.DIRECT_ALIGN, keep=1)
    first, second = buffers.take(), buffers.take()
    assert len(first) == 2 * bulkio.DIRECT_ALIGN
    buffers.give(first)
    buffers.give(second)  # over the limit: unmapped
    assert second.closed and not first.closed
    assert buffers.take() is first


def _cold_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    assert resident_pages(path) == 0


def _read_through(path: Path, piece: int) -> bytes:
    out = bytearray()
    with open(path, "rb", buffering=0) as source:
        reader = bulkio.DropBehindReader(source)
        buffer = bytearray(piece)
        while got := reader.readinto(buffer):
            out += buffer[:got]
    return bytes(out)


def test_a_drop_behind_reader_leaves_no_page_of_a_cold_file_behind(page_cache_folder: Path) -> None:
    data = os.urandom(20 * MIB + 777)
    path = page_cache_folder / "source"
    _cold_file(path, data)
    assert _read_through(path, 3 * MIB + 5) == data
    assert resident_pages(path) == 0


def test_a_drop_behind_reader_reads_plainly_what_is_not_a_regular_file_or_is_empty(tmp_path: Path) -> None:
    reader_fd, writer_fd = os.pipe()
    with os.fdopen(reader_fd, "rb", buffering=0) as source, os.fdopen(writer_fd, "wb") as sink:
        sink.write(b"piped bytes")
        sink.close()
        reader = bulkio.DropBehindReader(source)
        assert not reader._active
        buffer = bytearray(64)
        assert buffer[:reader.readinto(buffer)] == b"piped bytes"
        assert reader.readinto(buffer) == 0
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with open(empty, "rb", buffering=0) as source:
        reader = bulkio.DropBehindReader(source)
        assert not reader._active and reader.readinto(bytearray(16)) == 0


def test_a_drop_behind_reader_keeps_the_pages_that_were_cached_before_it_read(
        page_cache_folder: Path) -> None:
    data = os.urandom(48 * MIB)
    path = page_cache_folder / "source"
    _cold_file(path, data)
    with open(path, "rb") as warm:  # the user's working set: the middle of the file
        warm.seek(8 * MIB)
        assert warm.read(8 * MIB) == data[8 * MIB:16 * MIB]
    page = os.sysconf("SC_PAGE_SIZE")
    middle = resident_pages(path, 8 * MIB, 8 * MIB)
    assert middle >= 8 * MIB // page - 1  # (the last page may already have gone)
    assert _read_through(path, 3 * MIB) == data
    assert resident_pages(path, 0, 8 * MIB) == 0
    assert resident_pages(path, 8 * MIB, 8 * MIB) >= middle - 1
    assert resident_pages(path, 16 * MIB) == 0  # readahead past the middle was dropped too
    with open(path, "rb") as source:
        assert bulkio.resident(source.fileno(), 0, 0) is None  # nothing to tell


def test_a_direct_writer_abandoned_midway_waits_for_its_write_and_returns_its_buffers(
        page_cache_folder: Path) -> None:
    buffers = bulkio.AlignedBuffers(size=MIB)
    with open(page_cache_folder / "abandoned", "wb") as handle:
        sink = bulkio.DirectWriter(handle, buffers=buffers)
        sink.write(os.urandom(2 * MIB + 5))  # one buffer in flight, one partly filled
        sink.close()  # as after a failed restore: no finish
        assert sink._inflight is None and sink._io is None
    assert len(buffers._free) == 2


def test_a_buffer_given_back_while_a_view_of_it_lives_is_dropped_without_an_error() -> None:
    buffers = bulkio.AlignedBuffers(size=2 * bulkio.DIRECT_ALIGN, keep=0)
    buffer = buffers.take()
    view = memoryview(buffer)[:10]  # as an error's traceback may hold one
    buffers.give(buffer)  # beyond keep: to be unmapped, which the live view defers
    assert buffers._free == [] and not buffer.closed
    view.release()


def test_a_direct_writer_raises_a_write_error_instead_of_losing_it(page_cache_folder: Path) -> None:
    # The background write's error reaches the caller.
    result = raises_efbig(f"""
        from shardkey import bulkio
        with open({str(page_cache_folder / 'big')!r}, "wb") as handle:
            sink = bulkio.DirectWriter(handle, buffers=bulkio.AlignedBuffers(size=1 << 20))
            assert sink.direct
            try:
                for _ in range(8):
                    sink.write(bytes(1 << 20))
                sink.finish()
            finally:
                sink.close()
        """)
    assert result.returncode == 0, result.stderr


def _minor_faults() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_a_prefilled_pool_hands_out_buffers_whose_pages_are_already_there() -> None:
    pages = (4 * MIB) // bulkio.mmap.PAGESIZE
    cold = bulkio.AlignedBuffers(size=4 * MIB, keep=2)
    before = _minor_faults()
    cold.take()[::bulkio.mmap.PAGESIZE] = bytes(pages)  # one byte written in each page
    assert _minor_faults() - before >= pages * 0.9  # a fresh mapping faults every page

    warm = bulkio.AlignedBuffers(size=4 * MIB, keep=2)
    assert warm.prefill() == 2 and warm.prefill() == 0  # up to keep, once
    first, second = warm.take(), warm.take()
    before = _minor_faults()
    first[::bulkio.mmap.PAGESIZE] = bytes(pages)
    second[::bulkio.mmap.PAGESIZE] = bytes(pages)
    assert _minor_faults() - before < pages * 0.1
    warm.give(first)
    warm.give(second)
    assert {id(warm.take()), id(warm.take())} == {id(first), id(second)}  # kept, not mapped afresh
