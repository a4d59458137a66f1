"""Holder storage on a real filesystem: early writeback of staged bodies."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from holder_agent import storage


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux-only")
def test_writeback_of_a_written_file_starts_and_leaves_its_content_intact(tmp_path: Path) -> None:
    assert storage._sync_file_range() is not None  # resolved from libc, with 64-bit offsets
    path = tmp_path / "body"
    data = os.urandom(3 << 20)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        storage._start_writeback(handle.fileno())
    assert path.read_bytes() == data


def test_writeback_of_a_bad_descriptor_is_harmless() -> None:
    storage._start_writeback(-1)  # EBADF from the kernel, ignored: writeback is best effort
