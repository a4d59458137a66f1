"""A file received into the buffer it is written from, past the page cache
(``shardkey.directfile``), on a real filesystem."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from shardkey import directfile
from shardkey.bulkio import DIRECT_ALIGN
from tests.support.fsize import raises_efbig
from tests.support.pagecache import resident_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_DIRECT is Linux-first")

MIB = 1 << 20



def _fill(sink: directfile.DirectSink, data: bytes, piece: int) -> None:
    """Put ``data`` into ``sink`` in place, as ``recv_into`` would, ``piece`` bytes at most."""
    at = 0
    while at < len(data):
        room = sink.room(piece)
        got = min(len(room), len(data) - at)
        room[:got] = data[at:at + got]
        sink.commit(got)
        at += got


@pytest.mark.parametrize("tail", [0, 1, 4095, 4097, 12345])
def test_a_sink_filled_in_place_writes_every_byte_and_caches_nothing_but_its_last_block(
        page_cache_folder: Path, tail: int) -> None:
    buffers = directfile.BoundedBuffers(MIB, keep=1, limit=2)
    data = os.urandom(3 * MIB + tail)
    path = page_cache_folder / "shard"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    sink = directfile.DirectSink(fd, buffers=buffers)
    try:
        assert sink.direct
        _fill(sink, data[:2 * MIB + 7], 300_001)  # pieces straddling the buffer's edges
        assert os.fstat(fd).st_size == 2 * MIB  # two full buffers written, the rest staged
        assert resident_pages(path) == 0  # written past the page cache, not merely dropped later
        _fill(sink, data[2 * MIB + 7:], 65_536)
        sink.finish()
        assert not sink.direct  # the partial block went plainly
    finally:
        sink.close()
        os.close(fd)
    whole = len(data) - len(data) % DIRECT_ALIGN
    assert resident_pages(path, 0, whole) == 0
    assert path.read_bytes() == data
    assert buffers._out == 0 and len(buffers._free) == 1


def test_a_sink_copies_what_is_written_to_it_and_a_plain_one_writes_as_it_goes(
        page_cache_folder: Path) -> None:
    data = os.urandom(2 * MIB + 999)
    for direct in (True, False):
        path = page_cache_folder / f"copied-{direct}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        sink = directfile.DirectSink(fd, direct=direct, buffers=directfile.BoundedBuffers(MIB, 1, 1))
        try:
            assert sink.direct is direct
            sink.write(data[:100_000])
            _fill(sink, data[100_000:1_500_000], 131_072)
            if not direct:
                assert os.fstat(fd).st_size == 1_500_000  # nothing held back
            sink.write(memoryview(data)[1_500_000:])
            sink.finish()
        finally:
            sink.close()
            os.close(fd)
        assert path.read_bytes() == data


def test_sinks_past_the_pools_limit_write_plainly_and_the_buffers_come_back(page_cache_folder: Path) -> None:
    buffers = directfile.BoundedBuffers(MIB, keep=1, limit=1)
    fds = [os.open(page_cache_folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
           for i in range(3)]
    try:
        first = directfile.DirectSink(fds[0], buffers=buffers)
        second = directfile.DirectSink(fds[1], buffers=buffers)
        assert first.direct and not second.direct  # the one buffer is out: memory stays bounded
        assert not second.refused
        _fill(second, b"x" * 5000, 4096)
        second.finish()
        second.close()
        first.close()  # abandoned midway: the buffer goes back all the same
        assert buffers._out == 0
        third = directfile.DirectSink(fds[2], buffers=buffers)
        assert third.direct
        third.close()
    finally:
        for fd in fds:
            os.close(fd)
    assert (page_cache_folder / "f1").read_bytes() == b"x" * 5000


def test_a_direct_write_refused_for_its_alignment_goes_on_plainly(page_cache_folder: Path) -> None:
    path = page_cache_folder / "shifted"
    data = os.urandom(MIB + 4321)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    sink = directfile.DirectSink(fd, buffers=directfile.BoundedBuffers(MIB, 1, 1))
    try:
        assert sink.direct
        os.lseek(fd, 100, os.SEEK_SET)  # not on a block boundary: the kernel refuses (EINVAL)
        _fill(sink, data, 262_144)
        sink.finish()
        assert not sink.direct and sink.refused  # the holder says so once in its log
    finally:
        sink.close()
        os.close(fd)
    assert path.read_bytes() == bytes(100) + data  # every byte, where it was meant to go


def test_a_write_error_of_a_direct_sink_reaches_its_caller(page_cache_folder: Path) -> None:
    # The upload is then refused, never taken for whole.
    result = raises_efbig(f"""
        from shardkey import directfile
        fd = os.open({str(page_cache_folder / 'big')!r}, os.O_WRONLY | os.O_CREAT, 0o600)
        sink = directfile.DirectSink(fd, buffers=directfile.BoundedBuffers(1 << 20, 1, 1))
        assert sink.direct
        try:
            for _ in range(4):
                sink.write(bytes(1 << 20))
            sink.finish()
        finally:
            sink.close()
        """)
    assert result.returncode == 0, result.stderr


def test_a_sink_failing_on_a_full_disk_still_gives_its_buffer_back(page_cache_folder: Path) -> None:
    # The upload is discarded inside the handler of the write's error, while that error's
    # frames still hold views of the staging buffer; a pool with no room to keep it unmaps it.
    result = raises_efbig(f"""
        from shardkey import directfile
        buffers = directfile.BoundedBuffers(1 << 20, keep=0, limit=1)
        fd = os.open({str(page_cache_folder / 'big')!r}, os.O_WRONLY | os.O_CREAT, 0o600)
        sink = directfile.DirectSink(fd, buffers=buffers)
        assert sink.direct
        try:
            for _ in range(4):
                sink.write(bytes(1 << 20))
        except OSError:
            sink.close()
            assert buffers._out == 0 and buffers._free == []
            raise
        """)
    assert result.returncode == 0, result.stderr
