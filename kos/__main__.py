"""``python -m kos --config FILE``: run one KOS committee member."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shardkey.service.exits import run_service


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the member; a ShardKey error is one line and a service exit code."""
    parser = argparse.ArgumentParser(prog="python -m kos", description="ShardKey KOS committee member")
    parser.add_argument("--config", type=Path, required=True, help="KOS settings TOML file")
    args = parser.parse_args(argv)
    from kos.service import run  # after argument parsing: --help stays fast

    return run_service("kos", lambda: run(args.config))


if __name__ == "__main__":
    sys.exit(main())
