"""Tooling for ruleset authors: ``leadflow rules check`` (validate and lint), ``rules test`` (YAML test cases
run through the real core) and ``rules explain`` (rule by rule, why a lead got its outcome).

See ``docs/RULES-TOOLING.md``.
"""

from __future__ import annotations

from worker.tools.rules._casetest import TestRun, cases_path_for, fixed_score, format_run, run_cases
from worker.tools.rules._cli import run as run_cli
from worker.tools.rules._explain import explain, format_explanation
from worker.tools.rules._lint import CheckReport, Finding, check_text, read_sample
from worker.tools.rules._source import ParsedRuleset, parse_for_tools

__all__ = [
    "CheckReport",
    "Finding",
    "ParsedRuleset",
    "TestRun",
    "cases_path_for",
    "check_text",
    "explain",
    "fixed_score",
    "format_explanation",
    "format_run",
    "parse_for_tools",
    "read_sample",
    "run_cases",
    "run_cli",
]
