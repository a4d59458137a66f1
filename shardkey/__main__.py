"""``python -m shardkey`` = the ``shardkey`` command."""

from shardkey.cli import main

main()
