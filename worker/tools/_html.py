"""What the tools' HTML reports share: the page, its style, a PNG embedded as a data URI, a table of escaped
cells, and writing it with an error that names the file."""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Protocol

__all__ = ["STYLE", "img", "page", "table", "write_page"]

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #111827; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #e5e7eb; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e5e7eb; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #15803d; } .down { color: #b91c1c; }
.muted { color: #6b7280; } code { background: #f3f4f6; padding: 0 .25em; }
img { max-width: 100%; }
"""


def img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Collection[int] | None = None) -> str:
    """A table of already escaped cells; ``numeric`` columns (default: all but the first) are right-aligned."""
    right = range(1, len(head)) if numeric is None else numeric
    cls = [' class="n"' if i in right else "" for i in range(len(head))]
    out = ["<table><tr>", *(f"<th{cls[i]}>{escape(h)}</th>" for i, h in enumerate(head)), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td{cls[i]}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def page(title: str, body: str) -> str:
    """One HTML document with no external reference: the title (escaped), the style and the body (as is)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


class _ToolError(Protocol):
    def __call__(self, message: str, *, source: str) -> Exception: ...


def write_page(path: Path, text: str, error: _ToolError) -> None:
    """Write an HTML report to ``path``; ``error`` (the tool's exception class) names the file when it cannot."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        msg = f"cannot write the HTML report {str(path)!r}: {exc.strerror or exc}"
        raise error(msg, source=str(path)) from exc
