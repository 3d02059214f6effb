"""``leadflow rules test``: YAML test cases for a ruleset, each run through the real core (:func:`decide`).

A case gives a lead (``given``), an ``event``, maybe a fixed model ``score``, and what to ``expect``: status,
points, action, whether the lead is converted, the matched rules (exactly, or ``includes``/``excludes``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field

from worker.conditions import Loc, Source, read_yaml
from worker.core import Engine, decide
from worker.exceptions import Problem
from worker.rules import Ruleset
from worker.scoring import Model
from worker.tools.rules._lead import (
    DEFAULT_AT,
    Doc,
    EventDoc,
    GivenDoc,
    activities,
    build_event,
    build_state,
    check_activity_type,
    check_fields,
)
from worker.tools.rules._lead import validate as validate_doc

__all__ = ["CaseResult", "TestRun", "cases_path_for", "fixed_score", "format_run", "run_cases"]

_POINTS_TOLERANCE = 1e-6


class RulesExpect(Doc):
    """Matched rules that must be among (``includes``) or absent from (``excludes``) the decision's."""

    includes: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)


class ExpectDoc(Doc):
    """What the decision must say; keys left out are not checked."""

    status: str | None = None
    points: float | None = None
    action: Literal["none", "status_changed", "converted", "disqualified"] | None = None
    converted: bool | None = None
    rules: Any = None
    """A list of rule ids (exactly these matched), or :class:`RulesExpect`; checked by :func:`_check_expect`."""


class CaseDoc(Doc):
    """One test case."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str | None = None
    given: Any = None
    event: Any
    score: Any = None
    expect: Any


class CasesDoc(Doc):
    """A file of test cases."""

    cases: list[Any]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case's outcome: ``diffs`` lists each expectation that failed, as (key, expected, actual)."""

    name: str
    line: int | None
    diffs: tuple[tuple[str, str, str], ...]

    @property
    def passed(self) -> bool:
        return not self.diffs


@dataclass(slots=True)
class TestRun:
    """Every case of a file, or the problems that made the file unusable."""

    __test__ = False  # not a pytest class, despite the name

    path: str
    problems: list[Problem] = field(default_factory=list)
    results: list[CaseResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    def exit_code(self) -> int:
        """2 when the file (or the ruleset) is invalid, 1 when a case failed, else 0."""
        if self.problems:
            return 2
        return 1 if self.failed else 0


@dataclass(frozen=True, slots=True)
class _Case:
    name: str
    line: int | None
    state: dict[str, Any]
    event: Any
    score: float | None
    expect: ExpectDoc


def cases_path_for(rules: Path) -> Path:
    """``rules.yaml`` -> ``rules.tests.yaml`` next to it."""
    return rules.with_name(f"{rules.name.removesuffix('.yaml').removesuffix('.yml')}.tests.yaml")


def fixed_score(model: Model, probability: float) -> Model:
    """``model`` with its probability replaced by ``probability`` (the factors still come from the model)."""
    return _FixedScore(model.name, model.intercept, model.features, model.weights, model.training, probability)


@dataclass(frozen=True, slots=True, eq=False)
class _FixedScore(Model):
    fixed: float = 0.0

    def score(self, facts: Any) -> Any:
        return Model.score(self, facts)._replace(probability=self.fixed)


def run_cases(text: str, path: str, ruleset: Ruleset, model: Model) -> TestRun:
    """Read the case file ``text`` (``path`` names it) and run every case through ``ruleset`` and ``model``."""
    run = TestRun(path)
    src = Source(path)
    cases = _read(text, src, ruleset)
    if src.problems or cases is None:
        run.problems = sorted(src.problems, key=lambda p: p.line or 0) or [Problem("no test cases", path)]
        return run
    ruleset = dataclasses.replace(ruleset, duplicates=None)  # a case is one lead: no other lead to match it to
    plain = Engine(ruleset, model)
    for case in cases:
        engine = plain if case.score is None else Engine(ruleset, fixed_score(model, case.score))
        event = case.event
        state, decided = decide(engine, case.state, event, event.occurred_at.timestamp())
        actual = dict(decided.decision)
        actual["converted"] = state["converted"]
        run.results.append(CaseResult(case.name, case.line, tuple(_compare(case.expect, actual))))
    return run


def _compare(expect: ExpectDoc, actual: dict[str, Any]) -> list[tuple[str, str, str]]:
    diffs: list[tuple[str, str, str]] = []
    for key in ("status", "action", "converted"):
        wanted = getattr(expect, key)
        if wanted is not None and wanted != actual[key]:
            diffs.append((key, repr(wanted), repr(actual[key])))
    if expect.points is not None and abs(expect.points - actual["points"]) > _POINTS_TOLERANCE:
        diffs.append(("points", f"{expect.points:g}", f"{actual['points']:g}"))
    matched: list[str] = actual["matched_rules"]
    rules = expect.rules
    if isinstance(rules, list) and set(rules) != set(matched):
        missing = [r for r in rules if r not in matched]
        extra = [r for r in matched if r not in rules]
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "",
            )
            if part
        )
        diffs.append(("rules", ", ".join(rules) or "(none)", f"{', '.join(matched) or '(none)'} ({detail})"))
    elif isinstance(rules, RulesExpect):
        absent = [r for r in rules.includes if r not in matched]
        present = [r for r in rules.excludes if r in matched]
        if absent:
            diffs.append(("rules includes", ", ".join(absent), f"not matched; matched: {', '.join(matched) or '-'}"))
        if present:
            diffs.append(("rules excludes", ", ".join(present), "matched"))
    return diffs


# --- reading a case file ----------------------------------------------------------------------------------------


def _read(text: str, src: Source, ruleset: Ruleset) -> list[_Case] | None:
    try:
        empty = yaml.safe_load(text) is None
    except yaml.YAMLError:
        empty = False  # read_yaml reports it with its line
    if empty:
        src.add((), "the test case file is empty; it needs a list of 'cases'")
        return None
    data = read_yaml(text, src)
    if src.problems:
        return None
    doc = validate_doc(CasesDoc, data, (), src, "a test case file (a mapping with 'cases')")
    if doc is None:
        return None
    if not doc.cases:
        src.add(("cases",), "'cases' is empty; add at least one test case")
        return None
    rule_ids = [r.id for r in ruleset.scoring_rules] + [r.id for r in ruleset.qualification_rules]
    seen: dict[str, int | None] = {}
    out: list[_Case] = []
    for index, raw in enumerate(doc.cases):
        loc: Loc = ("cases", index)
        case = validate_doc(CaseDoc, raw, loc, src, "a test case")
        if case is None:
            continue
        line = src.line(loc)
        if case.name in seen:
            src.add((*loc, "name"), f"test case name {case.name!r} is used twice (first on line {seen[case.name]})")
        seen.setdefault(case.name, line)
        built = _case(case, loc, src, ruleset, rule_ids, line, index)
        if built is not None:
            out.append(built)
    return out


def _case(
    case: CaseDoc, loc: Loc, src: Source, ruleset: Ruleset, rule_ids: Sequence[str], line: int | None, index: int
) -> _Case | None:
    before = len(src.problems)
    given = GivenDoc() if case.given is None else validate_doc(GivenDoc, case.given, (*loc, "given"), src, "'given'")
    raw_profile = given.profile if given is not None else _mapping(_mapping(case.given).get("profile"))
    profile = check_fields(raw_profile, (*loc, "given", "profile"), src, nested=False)
    acts = None if given is None else activities(given, (*loc, "given", "activity"), src)
    event = validate_doc(EventDoc, case.event, (*loc, "event"), src, "'event'")
    upsert: dict[str, Any] | None = None
    if event is not None:
        if (event.upsert is None) == (event.activity is None):
            src.add((*loc, "event"), "an event is either 'upsert: {fields...}' or 'activity: <type>', exactly one")
        elif event.activity is not None:
            check_activity_type(event.activity, (*loc, "event", "activity"), src)
        elif event.upsert is not None:
            upsert = check_fields(event.upsert, (*loc, "event", "upsert"), src, nested=True)
            if "count" in case.event:
                src.add((*loc, "event", "count"), "'count' goes with 'activity', not with 'upsert'")
    score = case.score
    if score is not None and (score.__class__ not in (int, float) or not 0 <= score <= 1):
        src.add((*loc, "score"), f"'score' needs a number from 0 to 1 (the model's probability), got {score!r}")
    expect = validate_doc(ExpectDoc, case.expect, (*loc, "expect"), src, "'expect'")
    if expect is not None:
        expect = _check_expect(expect, (*loc, "expect"), src, ruleset, rule_ids)
    if len(src.problems) != before or given is None or profile is None or acts is None:
        return None
    if event is None or expect is None:
        return None
    lead_id = f"case-{index + 1}"
    at = event.at or DEFAULT_AT
    state = build_state(given, profile, acts, lead_id, at)
    built = build_event(event, upsert, lead_id, f"{lead_id}-event")
    return _Case(case.name, line, state, built, None if score is None else float(score), expect)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _suggest(word: str, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _check_expect(
    expect: ExpectDoc, loc: Loc, src: Source, ruleset: Ruleset, rule_ids: Sequence[str]
) -> ExpectDoc | None:
    """``expect`` with its ``rules`` read, or None with the problems recorded."""
    before = len(src.problems)
    if expect == ExpectDoc():
        src.add(loc, "'expect' checks nothing; give at least one of status, points, action, converted, rules")
    if expect.status is not None and expect.status not in ruleset.statuses:
        known = ", ".join(ruleset.statuses)
        hint = _suggest(expect.status, list(ruleset.statuses))
        src.add((*loc, "status"), f"unknown status {expect.status!r}; statuses are: {known}", suggestion=hint)
    rules: list[str] | RulesExpect | None = None
    named: list[tuple[Loc, object]] = []
    raw = expect.rules
    if isinstance(raw, list):
        named = [((*loc, "rules", i), r) for i, r in enumerate(raw)]
        rules = [r for r in raw if isinstance(r, str)]
    elif isinstance(raw, dict):
        rules = validate_doc(RulesExpect, raw, (*loc, "rules"), src, "'rules'")
        if rules is not None:
            named = [
                ((*loc, "rules", k, i), r) for k in ("includes", "excludes") for i, r in enumerate(getattr(rules, k))
            ]
    elif raw is not None:
        msg = f"'rules' needs a list of rule ids, or a mapping with 'includes' and/or 'excludes', got {raw!r}"
        src.add((*loc, "rules"), msg)
    for where, rule_id in named:
        if not isinstance(rule_id, str):
            src.add(where, f"a rule id is a text, got {rule_id!r}")
        elif rule_id not in rule_ids:
            src.add(where, f"no rule has the id {rule_id!r}", suggestion=_suggest(rule_id, rule_ids))
    if len(src.problems) != before:
        return None
    return expect.model_copy(update={"rules": rules})


def format_run(run: TestRun) -> str:
    """The report of a run, one line per case and a diff under each failure."""
    if run.problems:
        n = len(run.problems)
        lines = [f"{run.path}: invalid test case file, {n} problem{'s' if n != 1 else ''}:"]
        lines += [f"  {p}" for p in run.problems]
        return "\n".join(lines)
    lines = []
    for result in run.results:
        where = f"{run.path}:{result.line}" if result.line is not None else run.path
        lines.append(f"{'PASS' if result.passed else 'FAIL'}  {result.name}  ({where})")
        for key, expected, actual in result.diffs:
            lines.append(f"      {key}:")
            lines.append(f"        expected: {expected}")
            lines.append(f"        actual:   {actual}")
    failed = len(run.failed)
    passed = len(run.results) - failed
    lines.append(f"{passed} passed, {failed} failed")
    return "\n".join(lines)
