"""The forecast report as one self-contained HTML file: the tables of the terminal, each with its chart."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from worker.exceptions import ForecastError
from worker.tools._html import img, page, table, write_page
from worker.tools.forecast._charts import CHARTS
from worker.tools.forecast._views import headline, views

__all__ = ["render_html", "write_html"]


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML document with no external reference."""
    sources = "".join(f"<li>{escape(what)}: {escape(name)}</li>" for what, name in report["sources"].items() if name)
    lines = "".join(f"<p>{escape(line)}</p>" for line in headline(report))
    body = []
    for view in views(report):
        body.append(f'<h2 id="{view.name}">{escape(view.title[:1].upper() + view.title[1:])}</h2>')
        body.append(table(view.head, ([escape(cell) for cell in row] for row in view.rows)))
        if view.name in CHARTS:
            body.append(img(CHARTS[view.name](report), view.title))
    return page("leadflow forecast", f"<h1>leadflow forecast</h1><ul>{sources}</ul>{lines}{''.join(body)}")


def write_html(report: dict[str, Any], path: Path) -> None:
    """Write the HTML report to ``path``."""
    write_page(path, render_html(report), ForecastError)
