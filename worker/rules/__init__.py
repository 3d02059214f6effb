"""The rule language: YAML rulesets of scoring and qualification rules, validated and compiled to closures.

``load_ruleset(path)`` reads and compiles a file, ``parse_ruleset(text)`` a string; both raise
:class:`~worker.exceptions.RulesetError` listing every problem found. See ``docs/RULES.md``.
"""

from __future__ import annotations

from pathlib import Path

from worker.conditions import OPERATORS, Source, read_yaml
from worker.exceptions import Problem, RulesetError
from worker.rules._compile import compile_ruleset
from worker.rules._model import (
    ConversionDefaults,
    OpportunitySpec,
    QualificationRule,
    RuleOutcome,
    Ruleset,
    ScoringRule,
    StageDef,
    StatusDef,
)
from worker.rules._wake import next_wake
from worker.rules.duplicates import DuplicateRules

__all__ = [
    "OPERATORS",
    "ConversionDefaults",
    "DuplicateRules",
    "OpportunitySpec",
    "QualificationRule",
    "RuleOutcome",
    "Ruleset",
    "ScoringRule",
    "StageDef",
    "StatusDef",
    "compile_ruleset",
    "default_ruleset_path",
    "load_ruleset",
    "next_wake",
    "parse_ruleset",
]


def default_ruleset_path() -> Path:
    """The ruleset shipped with leadflow (``worker/rules/default.yaml``)."""
    return Path(__file__).with_name("default.yaml")


def parse_ruleset(text: str, path: str = "<ruleset>") -> Ruleset:
    """Validate and compile ruleset YAML; ``path`` names the text in problems."""
    src = Source(path)
    data = read_yaml(text, src)
    ruleset = None if src.problems else compile_ruleset(data, text, src)
    if ruleset is None:
        problems = sorted(src.problems, key=lambda p: p.line or 0)  # in file order; stable within a line
        if not problems:  # every path that fails records a problem; this only keeps the error meaningful
            problems = [Problem("the ruleset could not be compiled", path)]
        raise RulesetError(problems)
    return ruleset


def load_ruleset(path: str | Path) -> Ruleset:
    """Read and compile the ruleset file at ``path``."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = Problem(f"cannot read the ruleset file: {reason}", name)
        raise RulesetError([problem]) from exc
    return parse_ruleset(text, name)
