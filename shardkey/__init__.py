"""ShardKey: encrypted, erasure-coded shards over independent holders (docs/ARCHITECTURE.md).

Importing the package puts a stand-in for ``httpx._main`` in place (:func:`_defer_httpx_cli`).
"""

from __future__ import annotations

import importlib
import sys
import types


def _defer_httpx_cli() -> None:
    """Keep ``import httpx`` from importing httpx's own command-line client.

    httpx's ``__init__`` imports ``httpx._main`` (the ``httpx`` console command) whenever
    click, rich and pygments are installed, as they are here: rich and pygments were about a
    third of importing httpx, paid by every ``shardkey`` command and service start, for a
    command ShardKey never runs. The stand-in's ``main`` imports the real module and runs it,
    so ``httpx.main`` still works for anyone who calls it.
    """
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stand_in = types.ModuleType("httpx._main", "Stand-in: the real module is imported on first use.")

    def main(*args: object, **kwargs: object) -> object:
        if sys.modules.get("httpx._main") is stand_in:
            del sys.modules["httpx._main"]
        return importlib.import_module("httpx._main").main(*args, **kwargs)

    stand_in.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stand_in


_defer_httpx_cli()
