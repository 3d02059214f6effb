"""The forecast report as rich tables in the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from worker.tools.forecast._views import headline, views

__all__ = ["print_forecast"]

_WIDTH = 100
"""The tables' width at least, also when the output is not a terminal (rich's default there: 80 columns)."""


def print_forecast(console: Console, report: dict[str, Any]) -> None:
    """The headline, then every table of the report."""
    names = ", ".join(f"{what} {name}" for what, name in report["sources"].items() if name)
    console.print(f"[bold]leadflow forecast[/] from {escape(names)}")
    for line in headline(report):
        console.print(escape(line))
    for view in views(report):
        table = Table(title=Text(view.title), title_justify="left")
        for i, head in enumerate(view.head):
            table.add_column(head, justify="right" if i else "left")
        for row in view.rows:
            table.add_row(*(Text(cell) for cell in row))
        _print_wide(console, table)


def _print_wide(console: Console, table: Table) -> None:
    """Print ``table`` at least ``_WIDTH`` wide when the output is a file or a pipe (a terminal keeps its width)."""
    width = console.width
    if console.is_terminal or width >= _WIDTH:
        console.print(table)
        return
    console.width = _WIDTH
    try:
        console.print(table)
    finally:
        console.width = width
