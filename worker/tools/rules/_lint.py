"""``leadflow rules check``: validate a ruleset, then look for rules that cannot do what their author meant.

Lints (``code``, severity):

- ``never-matches`` (warning): the condition contradicts itself, so the rule never adds points / never fires;
- ``points-unreachable`` (warning): a qualification rule asks for more (or fewer) points than the scoring rules
  can ever add up to;
- ``shadowed`` (warning): every lead the rule matches is already taken by earlier qualification rules;
- ``field-never-set`` (warning, with a sample of events): a rule reads a field no event of the sample sets;
- ``overlap`` (info): two qualification rules with different outcomes can match the same lead (an example is
  given), so their order decides;
- ``too-complex`` (info): a condition has too many alternatives to analyse; nothing is claimed about it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from worker.exceptions import ConfigError, Problem, RulesetError
from worker.lead.events import LeadActivity, LeadEvent, LeadUpserted
from worker.lead.state import PROFILE_FIELDS
from worker.rules import QualificationRule, ScoringRule
from worker.tools.rules._domains import base_facts, domains, points_range
from worker.tools.rules._source import ParsedRuleset, RuleView, parse_for_tools
from worker.tools.rules._symbolic import All, Leaf, Node, Not, Result, Solver, TooBig, Verdict, describe_value

__all__ = ["CheckReport", "Finding", "check_text", "read_sample"]

WARNING = "warning"
INFO = "info"
_ALWAYS_SET = frozenset({"points", "score", "converted", "now", "activity.total", "event.type"})
_event_adapter: TypeAdapter[LeadUpserted | LeadActivity] = TypeAdapter(LeadEvent)


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding: where, which rule, what is wrong and what to do."""

    severity: str
    code: str
    path: str
    line: int | None
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        rule = f" rule {self.rule_id!r}:" if self.rule_id else ""
        return f"{where}: {self.severity}:{rule} {self.message} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "file": self.path,
            "line": self.line,
            "rule_id": self.rule_id,
            "message": self.message,
        }


@dataclass(slots=True)
class CheckReport:
    """The problems that make a ruleset invalid, or the lint findings of a valid one."""

    path: str
    problems: list[Problem] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def exit_code(self, strict: bool = False) -> int:
        """2 invalid, 1 a warning (or with ``strict`` any finding), 0 clean."""
        if self.problems:
            return 2
        counted = self.findings if strict else [f for f in self.findings if f.severity == WARNING]
        return 1 if counted else 0

    def to_dict(self, strict: bool = False) -> dict[str, Any]:
        return {
            "file": self.path,
            "valid": self.valid,
            "problems": [
                {"file": p.path, "line": p.line, "rule_id": p.rule_id, "message": p.message, "suggestion": p.suggestion}
                for p in self.problems
            ],
            "findings": [f.to_dict() for f in self.findings],
            "exit_code": self.exit_code(strict),
        }


@dataclass(frozen=True, slots=True)
class Sample:
    """What a sample of lead events sets: field names, activity types, and how many events it has."""

    path: str
    events: int
    fields: frozenset[str]
    activity_types: frozenset[str]
    invalid: int

    def sets(self, name: str) -> bool | None:
        """Whether some event sets ``name``; None for facts this lint does not judge (derived or unknown)."""
        if name in _ALWAYS_SET:
            return True
        if name.startswith("activity."):
            kind = name.split(".")[1]
            return kind in self.activity_types or kind == "total"
        if name in ("last_activity_at", "days_since_last_activity", "event.activity_type"):
            return bool(self.activity_types)
        if name.startswith("custom.") or name in PROFILE_FIELDS or name == "status":
            return name in self.fields
        return None


def read_sample(path: Path) -> Sample:
    """Read JSON-lines lead events (as ``leadflow produce`` sends them); bad lines are counted, not fatal."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        msg = f"cannot read the sample {str(path)!r}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    fields: set[str] = set()
    types: set[str] = set()
    events = invalid = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            event = _event_adapter.validate_json(line)
        except ValidationError:
            invalid += 1
            continue
        events += 1
        if isinstance(event, LeadActivity):
            types.add(event.activity.type)
            continue
        lead = event.lead
        for name in lead.model_fields_set:
            if name == "custom":
                fields.update(f"custom.{k}" for k, v in (lead.custom or {}).items() if v is not None)
            elif getattr(lead, name) is not None:
                fields.add(name)
    return Sample(str(path), events, frozenset(fields), frozenset(types), invalid)


# --- the lints --------------------------------------------------------------------------------------------------


def check_text(text: str, path: str, sample: Sample | None = None) -> CheckReport:
    """Validate and lint the ruleset ``text`` (``path`` names it in messages)."""
    report = CheckReport(path)
    try:
        parsed = parse_for_tools(text, path)
    except RulesetError as exc:
        report.problems.extend(exc.problems)
        return report
    report.findings.extend(_Linter(parsed).run())
    if sample is not None:
        report.findings.extend(_unset_fields(parsed, sample))
    report.findings.sort(key=lambda f: (f.line or 0, f.code))
    return report


def _outcome(rule: QualificationRule) -> tuple[object, ...]:
    opp = rule.opportunity
    where = None if opp is None else (opp.stage.name, opp.queue, opp.owner_id)
    return (rule.status, rule.convert, where)


def _difference(first: QualificationRule, second: QualificationRule) -> str:
    """How the outcome of ``first`` differs from that of ``second``, in words."""
    if first.status != second.status:
        return f"status {first.status!r} rather than {second.status!r}"
    if first.convert != second.convert:
        return "it converts the lead" if first.convert else "it does not convert the lead"
    opp = first.opportunity
    if opp is None:  # same status, neither converts: _outcome would be equal
        return "a different outcome"
    to = opp.queue or opp.owner_id or "the lead's owner"
    return f"an opportunity at stage {opp.stage.name!r} for {to!r}"


class _Linter:
    def __init__(self, parsed: ParsedRuleset) -> None:
        self.parsed = parsed
        self.path = parsed.path
        base = base_facts()
        self.free = Solver(domains(), base)
        self.never: set[str] = set()
        self.findings: list[Finding] = []
        scoring = [(v, self._can_match(v)) for v in parsed.scoring]
        rules: list[tuple[ScoringRule, bool]] = []
        for view, can in scoring:
            if isinstance(view.rule, ScoringRule):
                rules.append((view.rule, can))
        low, high, whole = points_range(rules)
        self.points = (low, high)
        if not whole:  # evaluate rounds such totals to 4 decimals (monotonic; 1e-9 covers float sums)
            low, high = round(low - 1e-9, 4), round(high + 1e-9, 4)
        self.bounded = Solver(domains((low, high)), base)
        self.base = base

    def add(self, severity: str, code: str, view: RuleView, message: str) -> None:
        self.findings.append(Finding(severity, code, self.path, view.line, view.id, message))

    def _check(self, solver: Solver, node: Node, view: RuleView, what: str) -> Result | None:
        try:
            return solver.check(node)
        except TooBig:
            msg = f"the condition has too many alternatives to analyse {what}; nothing is claimed about it"
            self.add(INFO, "too-complex", view, msg)
            return None

    def _can_match(self, view: RuleView) -> bool:
        """Lint one rule's own condition; False when it can never match."""
        if view.when is None:
            return True
        result = self._check(self.free, view.when, view, "whether it can match")
        if result is None or result.verdict is not Verdict.UNSAT:
            return True
        effect = "never adds its points" if view.section == "scoring" else "never fires"
        self.add(WARNING, "never-matches", view, f"can never match, so it {effect}: {result.why}")
        self.never.add(view.id)
        return False

    def run(self) -> list[Finding]:
        live: list[RuleView] = []
        for view in self.parsed.qualification:
            if not self._can_match(view) or view.when is None or not self._reachable(view, view.when):
                continue
            earlier = [other for other in live if self._overlaps(other, view)]
            if earlier and self._shadowed(view, earlier):
                continue
            for other in earlier:
                self._overlap(other, view)
            live.append(view)
        return self.findings

    def _reachable(self, view: RuleView, when: Node) -> bool:
        result = self._check(self.bounded, when, view, "against the points the scoring rules can add up to")
        if result is None or result.verdict is not Verdict.UNSAT:
            return True
        low, high = self.points
        asks = ", ".join(f"`{leaf.describe()}`" for leaf in _leaves(when) if leaf.field == "points")
        self.add(
            WARNING,
            "points-unreachable",
            view,
            f"can never match: it asks for {asks}, but the scoring rules add up to points between {low:g} and "
            f"{high:g}; lower the threshold or add scoring rules",
        )
        return False

    def _both(self, first: Node | None, second: Node | None) -> Result | None:
        """Whether ``first`` and ``second`` can hold together; None when either is missing or too big."""
        if first is None or second is None:
            return None
        try:
            return self.bounded.check(All((first, second)))
        except TooBig:
            return None

    def _overlaps(self, first: RuleView, second: RuleView) -> bool:
        result = self._both(first.when, second.when)
        return result is None or result.verdict is not Verdict.UNSAT

    def _shadowed(self, view: RuleView, earlier: Sequence[RuleView]) -> bool:
        if view.when is None:
            return False
        node = All((view.when, *(Not(other.when) for other in earlier if other.when is not None)))
        result = self._check(self.bounded, node, view, "whether earlier rules take all its leads")
        if result is None or result.verdict is not Verdict.UNSAT:
            return False
        alone = [other for other in earlier if self._covers(other, view)]
        culprits = alone or earlier
        names = ", ".join(f"{o.id!r} (line {o.line})" for o in culprits)
        which = "the earlier rule" if len(culprits) == 1 else "the earlier rules"
        self.add(
            WARNING,
            "shadowed",
            view,
            f"never fires: every lead it matches is already taken by {which} {names}; move it higher or narrow {which}",
        )
        return True

    def _covers(self, earlier: RuleView, view: RuleView) -> bool:
        """Whether ``earlier`` alone takes every lead ``view`` matches."""
        result = self._both(view.when, None if earlier.when is None else Not(earlier.when))
        return result is not None and result.verdict is Verdict.UNSAT

    def _overlap(self, first: RuleView, second: RuleView) -> None:
        a, b = first.rule, second.rule
        if not isinstance(a, QualificationRule) or not isinstance(b, QualificationRule):
            return
        if _outcome(a) == _outcome(b):
            return
        result = self._both(first.when, second.when)
        if result is None or result.verdict is not Verdict.SAT or result.witness is None:
            return
        example = ", ".join(
            f"{name} = {describe_value(value)}"
            for name, value in sorted(result.witness.items())
            if self.base.get(name) != value
        )
        self.add(
            INFO,
            "overlap",
            second,
            f"can match the same lead as the earlier rule {first.id!r} (line {first.line}), for example a lead "
            f"with {example or 'nothing set'}; {first.id!r} wins because it comes first ({_difference(a, b)}); "
            "check that this order is what you want",
        )


def _leaves(node: Node) -> Iterator[Leaf]:
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Not):
        yield from _leaves(node.inner)
    else:
        for part in node.parts:
            yield from _leaves(part)


def _read_fields(view: RuleView) -> Iterable[tuple[str, int | None]]:
    if view.when is not None:
        yield from ((leaf.field, leaf.line) for leaf in _leaves(view.when))
    per = getattr(view.rule, "per", None)
    if isinstance(per, str):
        yield per, view.line


def _unset_fields(parsed: ParsedRuleset, sample: Sample) -> list[Finding]:
    out: list[Finding] = []
    bad = f" ({sample.invalid:,} lines were not lead events)" if sample.invalid else ""
    for view in itertools.chain(parsed.scoring, parsed.qualification):
        reported: set[str] = set()
        for name, line in _read_fields(view):
            if name in reported or sample.sets(name) is not False:
                continue
            reported.add(name)
            msg = (
                f"reads field {name!r}, which none of the {sample.events:,} events in {sample.path} sets{bad}; "
                "the rule will always see it missing: check the field name or the producers"
            )
            out.append(Finding(WARNING, "field-never-set", parsed.path, line or view.line, view.id, msg))
    return out
