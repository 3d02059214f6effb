"""Tooling for ruleset authors: ``leadflow rules check`` (validate and lint), ``rules test`` (YAML test cases
run through the real core) and ``rules explain`` (rule by rule, why a lead got its outcome).

See ``docs/RULES-TOOLING.md``.
"""

from __future__ import annotations

from worker.rules.tools._lint import CheckReport, Finding, check_text, read_sample

__all__ = ["CheckReport", "Finding", "check_text", "read_sample"]
