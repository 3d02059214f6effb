"""Matplotlib figures as PNG bytes, for the model card and the backtest's HTML report (no display needed)."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["figure_png"]


def figure_png(figure: Any, dpi: int) -> bytes:
    """The figure drawn with the Agg backend at ``dpi``, cropped to its content."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
