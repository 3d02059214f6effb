"""The forecast report as rich tables in the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from worker.tools.forecast._views import headline, views

__all__ = ["print_forecast"]


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
        console.print(table)
