"""Backtesting rulesets: replay a history of lead events offline through the real core and compare outcomes.

``run_backtest`` is ``leadflow backtest`` (docs/BACKTEST.md). Its parts work on their own: ``open_events_file`` and
``open_topic`` read a history as batches of raw records, ``replay`` runs them through one or more engines (each
with its own in-memory state), ``build_report`` turns the runs into plain data (``diff_rules`` says which rules
differ, ``load_outcomes``/``parse_outcomes`` and ``confusion`` compare with known outcomes), ``print_report`` and
``write_html`` render it.
"""

from worker.tools.backtest._html import write_html
from worker.tools.backtest._outcomes import confusion, load_outcomes, parse_outcomes
from worker.tools.backtest._replay import Run, replay
from worker.tools.backtest._report import build_report
from worker.tools.backtest._rulediff import diff_rules
from worker.tools.backtest._run import run_backtest
from worker.tools.backtest._sources import open_events_file, open_topic
from worker.tools.backtest._terminal import print_report

__all__ = [
    "Run",
    "build_report",
    "confusion",
    "diff_rules",
    "load_outcomes",
    "open_events_file",
    "open_topic",
    "parse_outcomes",
    "print_report",
    "replay",
    "run_backtest",
    "write_html",
]
