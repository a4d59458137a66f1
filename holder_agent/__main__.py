"""``python -m holder_agent --config FILE``: run one holder agent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shardkey.service.exits import run_service


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the agent; a ShardKey error is one line and a service exit code."""
    parser = argparse.ArgumentParser(prog="python -m holder_agent",
                                     description="Run a ShardKey holder agent.")
    parser.add_argument("--config", required=True, type=Path, help="holder settings (TOML)")
    args = parser.parse_args(argv)
    from holder_agent.service import run

    return run_service("holder_agent", lambda: run(args.config))


if __name__ == "__main__":
    sys.exit(main())
