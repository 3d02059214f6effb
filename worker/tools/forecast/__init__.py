"""``leadflow forecast``: the pipeline and the forecast from the opportunities and their feedback (docs/FORECAST.md).

``fold_opportunities`` folds the topics' records with the worker's own pure fold (:mod:`worker.opportunities`),
``count_leads`` counts the leads behind them, ``build_forecast`` adds every figure up as plain data (what
``--json`` prints), ``print_forecast`` and ``write_html`` render it; ``run_forecast`` does all of it.
"""

from worker.tools.forecast._fold import Folded, LeadCounts, count_leads, fold_opportunities
from worker.tools.forecast._html import render_html, write_html
from worker.tools.forecast._report import build_forecast
from worker.tools.forecast._run import ForecastFiles, forecast_report, read_file, read_topic, run_forecast
from worker.tools.forecast._terminal import print_forecast
from worker.tools.forecast._views import views

__all__ = [
    "Folded",
    "ForecastFiles",
    "LeadCounts",
    "build_forecast",
    "count_leads",
    "fold_opportunities",
    "forecast_report",
    "print_forecast",
    "read_file",
    "read_topic",
    "render_html",
    "run_forecast",
    "views",
    "write_html",
]
