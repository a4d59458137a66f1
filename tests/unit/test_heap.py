"""The allocator setting the CLI makes at start-up."""

from __future__ import annotations

import sys

import pytest

from shardkey.heap import release_large_buffers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_fixed_mmap_threshold() -> None:
    assert release_large_buffers() is True
