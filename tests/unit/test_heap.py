"""The allocator setting the CLI makes at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shardkey.heap import limit_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_arena_limit() -> None:
    assert limit_arenas() is True


_COLLECTIONS_DURING_IMPORTS = """
import gc, sys
collections = []
gc.callbacks.append(lambda phase, info: collections.append(info["generation"]) if phase == "start" else None)
from shardkey.heap import freeze_long_lived, pause_collection
pause_collection()
collections.clear()  # importing shardkey.heap itself may have collected
import shardkey.client.fetch, shardkey.client.store  # the eth-*, pydantic, cryptography imports
during = len(collections)
freeze_long_lived()
garbage = []
garbage.append(garbage)  # a cycle only the collector frees
del garbage
found = gc.collect()
from shardkey.cli import main
gc.disable()
try:
    main(["--help"])
except SystemExit:
    pass
print(during, gc.isenabled(), found >= 1)
"""


def test_no_collection_while_the_libraries_load_and_collection_resumes_after() -> None:
    # A fresh interpreter: this one imported everything long ago.
    out = subprocess.run([sys.executable, "-c", _COLLECTIONS_DURING_IMPORTS], capture_output=True,
                         text=True, check=True).stdout.split()[-3:]  # after the --help text
    assert out == ["0", "True", "True"], out  # main() leaves the collector on for its caller
