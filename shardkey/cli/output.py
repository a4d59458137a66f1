"""Printing: tables for people, JSON/CSV for scripts, a progress bar on a terminal."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """JSON when asked, else a table (list of dicts) or ``key: value`` lines."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if isinstance(data, list):
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_lines=False)
        cols = list(columns or (data[0].keys() if data else []))
        for col in cols:
            table.add_column(col)
        for row in data:
            table.add_row(*[str(row.get(c, "")) for c in cols])
        Console(width=200 if not sys.stdout.isatty() else None).print(table)
        return
    for key, value in data.items():
        click.echo(f"{key}: {value}")


def emit_csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """CSV on stdout."""
    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


@contextlib.contextmanager
def progress_bar(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` callback; draws a bar only on an interactive stderr."""
    if not enabled or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    columns = [*Progress.get_default_columns()[:-1], BarColumn(), TimeRemainingColumn()]
    if label == "fetching":
        columns.append(TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total or None)
        yield lambda n: progress.advance(task, n)
