"""The ``shardkey`` command. Every ShardKeyError is caught once, in :func:`main`.

Exit codes: 0 done; 2 bad usage or input; 3 denied by policy; 4 data could not be
restored or verified; 5 a devnet member is down (``devnet status``), or the devnet's
anvil died with its chain (``devnet up``, ``devnet restart``); 6 a lost stripe (``audit
verify``); 7 a shard could not be repaired (``repair``; it says why, a re-run resumes);
8 a re-deal's new epoch did not become current in time (``redeal``; run it again); 1
anything else.

Imports: every command module is imported (so ``--help`` lists every command), and each
imports at the top only click, the other ``shardkey.cli`` modules and the light
``shardkey.errors``/``chain.errors``; a command imports what it uses inside its function,
and annotations' types come under ``TYPE_CHECKING``. ``shardkey --help`` thus loads no
chain, key, HTTP or printing library, and a command only its own
(tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

import gc
import sys

import click

from shardkey.chain.errors import ChainError
from shardkey.cli.context import connection_hint
from shardkey.errors import ShardKeyError
from shardkey.heap import limit_arenas, pause_collection


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``shardkey`` console script."""
    # No cyclic collection while the command imports its libraries: it starts again once the
    # command has its chain (Env.chain) or its data path (store, fetch), whichever is first.
    pause_collection()
    try:
        _run(argv)
    finally:
        gc.enable()  # for a caller that runs main() in its own process and goes on


def _run(argv: list[str] | None) -> None:
    limit_arenas()  # before any thread starts (arenas are given out per thread)
    from shardkey.cli.commands import cli

    invocation: dict[str, object] = {}  # the Env of this run, for the connection hint
    try:
        cli.main(args=argv, prog_name="shardkey", standalone_mode=False, obj=invocation)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except ChainError as exc:
        click.echo(f"error: {exc}", err=True)
        if "Connection refused" in str(exc) or "failed:" in str(exc):
            click.echo(f"hint: {connection_hint(invocation.get('env'))}", err=True)
        sys.exit(exc.exit_code)
    except ShardKeyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
