"""``python -m repairer --config FILE``: run the repair service."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shardkey.service.exits import run_service


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the service; a ShardKey error is one line and a service exit code."""
    parser = argparse.ArgumentParser(prog="python -m repairer", description="ShardKey repair service")
    parser.add_argument("--config", type=Path, required=True, help="repairer settings TOML file")
    args = parser.parse_args(argv)
    from repairer.service import run  # after argument parsing: --help stays fast

    return run_service("repairer", lambda: run(args.config))


if __name__ == "__main__":
    sys.exit(main())
