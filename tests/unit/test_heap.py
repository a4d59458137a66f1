"""The allocator setting the CLI makes at start-up."""

from __future__ import annotations

import sys

import pytest

from shardkey.heap import limit_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_arena_limit() -> None:
    assert limit_arenas() is True
