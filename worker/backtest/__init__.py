"""Backtesting rulesets: replay a history of lead events offline through the real core and compare outcomes.

``run_backtest`` is ``leadflow backtest`` (docs/BACKTEST.md); the pure parts are usable on their own:
``replay`` runs batches of raw records through one or more engines, each with its own in-memory state,
``build_report`` turns the runs into plain data, ``print_report`` and ``write_html`` render it, and
``load_outcomes`` reads a CSV of known outcomes for precision and recall.
"""

from worker.backtest._html import render_html, write_html
from worker.backtest._outcomes import Confusion, Outcomes, confusion, load_outcomes, parse_outcomes
from worker.backtest._replay import DECIDED_AT, LeadResult, Run, replay
from worker.backtest._report import build_report
from worker.backtest._rulediff import RuleChanges, diff_rules
from worker.backtest._run import run_backtest
from worker.backtest._sources import EventSource, open_events_file, open_topic
from worker.backtest._terminal import print_report

__all__ = [
    "DECIDED_AT",
    "Confusion",
    "EventSource",
    "LeadResult",
    "Outcomes",
    "RuleChanges",
    "Run",
    "build_report",
    "confusion",
    "diff_rules",
    "load_outcomes",
    "open_events_file",
    "open_topic",
    "parse_outcomes",
    "print_report",
    "render_html",
    "replay",
    "run_backtest",
    "write_html",
]
