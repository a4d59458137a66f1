"""``python -m kos --config FILE``: run one KOS replica."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shardkey.errors import ShardKeyError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the replica, map ShardKey errors to a one-line message."""
    parser = argparse.ArgumentParser(prog="python -m kos", description="ShardKey KOS replica")
    parser.add_argument("--config", type=Path, required=True, help="KOS settings TOML file")
    args = parser.parse_args(argv)
    from kos.service import run  # after argument parsing: --help stays fast

    try:
        return run(args.config)
    except ShardKeyError as exc:
        message = " ".join(str(exc).split())
        print(f"kos: error: {message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
