"""Validate ruleset data and compile it into closures, collecting every problem on the way.

Conditions are compiled by :mod:`worker.conditions`; this module adds what only rulesets have: statuses, stages,
conversion defaults, scoring and qualification rules, decay and opportunity amounts, and the ``routing:`` section
(compiled by :mod:`worker.routing`).

Why one module of about 510 lines: the sections of a ruleset (statuses, stages, conversion, scoring,
qualification, decay, amounts) check one another's names in one pass over one context.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType
from typing import Any

from worker.conditions import (
    Compiled,
    ConditionContext,
    Facts,
    Kind,
    Loc,
    Source,
    activity_part,
    compile_condition,
    declared_fields,
    describe,
    raw_id,
    suggest,
    within_limits,
)
from worker.conditions.limits import MAX_RULES
from worker.routing import compile_routing
from worker.rules._model import (
    ConversionDefaults,
    Decay,
    OpportunitySpec,
    QualificationRule,
    Ruleset,
    ScoringRule,
    StageDef,
    StatusDef,
)
from worker.rules._schema import (
    AmountDoc,
    ConversionDoc,
    DecayDoc,
    OpportunityDoc,
    QualificationDoc,
    RulesetDoc,
    ScoringDoc,
    StageDoc,
    StatusDoc,
)
from worker.rules._template import FactTemplate, compile_name
from worker.rules.duplicates import compile_duplicates

__all__ = [
    "DEFAULT_STAGES",
    "DEFAULT_STATUSES",
    "FORECAST_CATEGORIES",
    "Compiled",
    "compile_condition",
    "compile_ruleset",
]

DEFAULT_STATUSES: tuple[StatusDef, ...] = (
    StatusDef("Open"),
    StatusDef("Contacted"),
    StatusDef("Qualified", converted=True),
    StatusDef("Unqualified", disqualified=True),
)
DEFAULT_STAGES: tuple[StageDef, ...] = (
    StageDef("Prospecting", 10, "Pipeline"),
    StageDef("Qualification", 10, "Pipeline"),
    StageDef("Needs Analysis", 20, "Pipeline"),
    StageDef("Value Proposition", 50, "Pipeline"),
    StageDef("Id. Decision Makers", 60, "Pipeline"),
    StageDef("Perception Analysis", 70, "Pipeline"),
    StageDef("Proposal/Price Quote", 75, "Pipeline"),
    StageDef("Negotiation/Review", 90, "Pipeline"),
    StageDef("Closed Won", 100, "Closed", closed=True, won=True),
    StageDef("Closed Lost", 0, "Omitted", closed=True),
)
FORECAST_CATEGORIES = ("Pipeline", "BestCase", "Forecast", "MostLikely", "Omitted", "Closed")

_NUMBER: frozenset[type[float]] = frozenset({int, float})
_SCORING_UNREADABLE = {"points": "scoring rules cannot read 'points' (it is being added up); qualification rules can"}


@dataclass(slots=True)
class RulesContext(ConditionContext):
    """What the ruleset compiler knows besides the conditions: statuses, stages, conversion defaults, decay."""

    statuses: Mapping[str, StatusDef] = field(default_factory=dict)
    stages: dict[str, StageDef] = field(default_factory=dict)
    conversion: ConversionDefaults | None = None
    decay: Decay | None = None
    """The ruleset's default decay for engagement scoring rules."""

    def stage(self, name: str, loc: Loc, rule_id: str | None = None) -> StageDef | None:
        found = self.stages.get(name)
        if found is None:
            known = ", ".join(self.stages)
            hint = suggest(name, self.stages)
            self.add(loc, f"unknown stage {name!r}; stages are: {known}", rule_id, hint)
        return found

    def template(self, template: str, loc: Loc, rule_id: str | None = None) -> None:
        compiled = FactTemplate(template)
        if not compiled.is_valid():
            msg = f"name template {template!r} has a '$' not followed by a field name (write '$$' for a '$')"
            self.add(loc, msg, rule_id)
            return
        for ident in compiled.get_identifiers():
            checked = self.field(ident)
            if checked.kind is None:
                self.add(loc, f"name template {template!r}: {checked.message}", rule_id, checked.suggestion)


# --- statuses, stages, conversion ------------------------------------------------------------------------------


def _statuses(raw: list[Any] | None, ctx: RulesContext) -> tuple[Mapping[str, StatusDef], str]:
    if raw is None:
        return {s.name: s for s in DEFAULT_STATUSES}, DEFAULT_STATUSES[0].name
    if not raw:
        ctx.add(("statuses",), "needs at least one status (or leave 'statuses' out for the standard ones)")
        return {s.name: s for s in DEFAULT_STATUSES}, DEFAULT_STATUSES[0].name
    statuses: dict[str, StatusDef] = {}
    default: str | None = None
    for i, item in enumerate(raw):
        loc: Loc = ("statuses", i)
        doc, _ = ctx.validate(StatusDoc, item, loc, "a status")
        if doc is None:
            continue
        if doc.name in statuses:
            ctx.add((*loc, "name"), f"status {doc.name!r} is listed twice")
            continue
        if doc.converted and doc.disqualified:
            ctx.add(loc, f"status {doc.name!r} cannot be both converted and disqualified")
        if doc.default:
            if default is not None:
                ctx.add((*loc, "default"), f"only one status can be the default; {default!r} already is")
            else:
                default = doc.name
        statuses[doc.name] = StatusDef(doc.name, doc.converted, doc.disqualified)
    if not statuses:
        return {s.name: s for s in DEFAULT_STATUSES}, DEFAULT_STATUSES[0].name
    return statuses, default or next(iter(statuses))


def _stages(raw: list[Any], ctx: RulesContext) -> dict[str, StageDef]:
    stages = {s.name: s for s in DEFAULT_STAGES}
    given: set[str] = set()
    for i, item in enumerate(raw):
        loc: Loc = ("stages", i)
        doc, bad = ctx.validate(StageDoc, item, loc, "a stage")
        if doc is None:
            continue
        if doc.name in given:
            ctx.add((*loc, "name"), f"stage {doc.name!r} is listed twice")
            continue
        given.add(doc.name)
        base = stages.get(doc.name)
        missing = [k for k in ("probability", "forecast_category") if getattr(doc, k) is None and k not in bad]
        if base is None and missing:
            keys = " and ".join(repr(k) for k in missing)
            ctx.add(loc, f"new stage {doc.name!r} needs {keys}")
            continue
        category = doc.forecast_category if doc.forecast_category is not None else base and base.forecast_category
        if not isinstance(category, str) or not _forecast_category(category, (*loc, "forecast_category"), ctx):
            continue
        closed = doc.closed if doc.closed is not None else bool(base and base.closed)
        won = doc.won if doc.won is not None else bool(base and base.won)
        if won and not closed:
            ctx.add(loc, f"stage {doc.name!r} is won but not closed; a won stage must be closed: true")
        probability = doc.probability if doc.probability is not None else (base.probability if base else 0)
        stages[doc.name] = StageDef(doc.name, probability, category, closed, won)
    return stages


def _forecast_category(category: str, loc: Loc, ctx: RulesContext, rule_id: str | None = None) -> bool:
    """Whether ``category`` is a forecast category (a problem is recorded when not)."""
    if category in FORECAST_CATEGORIES:
        return True
    hint = "Forecast" if category.casefold() == "commit" else suggest(category, FORECAST_CATEGORIES)
    allowed = ", ".join(FORECAST_CATEGORIES)
    ctx.add(loc, f"unknown forecast category {category!r}; use one of {allowed}", rule_id, hint)
    return False


def _conversion(raw: object, ctx: RulesContext) -> ConversionDefaults:
    doc: ConversionDoc | None = ConversionDoc()
    if raw is not None:
        doc, _ = ctx.validate(ConversionDoc, raw, ("conversion",), "'conversion'", placeholders={})
    doc = doc or ConversionDoc()
    stage = ctx.stage(doc.stage, ("conversion", "stage")) or ctx.stages["Prospecting"]
    ctx.template(doc.name, ("conversion", "name"))
    return ConversionDefaults(stage, doc.close_in_days, doc.amount, doc.queue, doc.name)


# --- rules ------------------------------------------------------------------------------------------------------


def _scoring_rule(raw: object, index: int, ctx: RulesContext) -> ScoringRule | None:
    loc: Loc = ("scoring", index)
    rule_id = raw_id(raw)
    placeholders = {"id": f"scoring-{index}", "points": 0.0}
    doc, bad = ctx.validate(ScoringDoc, raw, loc, "scoring rule", rule_id, placeholders)
    if doc is None:
        return None
    ctx.unreadable = _SCORING_UNREADABLE
    ctx.read = set()
    compiled: Compiled | None = None
    broken = bool(bad)
    if doc.when is not None:
        if within_limits(doc.when, (*loc, "when"), ctx, rule_id):
            compiled = compile_condition(doc.when, (*loc, "when"), ctx, rule_id)
        broken = broken or compiled is None
    elif isinstance(raw, dict) and "when" in raw:
        ctx.add((*loc, "when"), "'when' is empty; give a condition or leave 'when' out", rule_id)
        broken = True
    ctx.unreadable = {}
    per: str | None = None
    if doc.per is not None:
        checked = ctx.field(doc.per, Kind.NUMBER)
        if checked.kind is None:
            ctx.add((*loc, "per"), checked.message or "unknown field", rule_id, checked.suggestion)
            broken = True
        elif checked.kind not in (Kind.NUMBER, Kind.ANY) or doc.per == "points":
            msg = f"'per' needs a count or another number, but field {doc.per!r} holds {checked.kind.value}"
            if doc.per == "points":
                msg = "'per' cannot use 'points' (it is being added up)"
            ctx.add((*loc, "per"), msg, rule_id)
            broken = True
        else:
            per = str(doc.per)
    elif doc.when is None and not bad & {"when", "per"}:
        ctx.add(loc, "a scoring rule needs 'when', 'per' or both", rule_id)
        broken = True
    if doc.max is not None and doc.per is None and "per" not in bad:
        ctx.add((*loc, "max"), "'max' only limits rules with 'per'; for a fixed rule set 'points'", rule_id)
        broken = True
    decayed = _rule_decay(doc.decay, (*loc, "decay"), ctx, rule_id)
    if broken or decayed is None:
        return None
    decay, decay_from = decayed
    condition = guard = leaf = group = None
    if compiled is not None:
        condition, guard, group = compiled.condition, compiled.guard, compiled.group
        leaf = compiled.leaf if compiled.leaf is not None and compiled.leaf[0] == compiled.guard else None
    return ScoringRule(
        doc.id,
        doc.points,
        condition,
        per,
        doc.max,
        doc.description,
        guard,
        leaf,
        decay,
        decay_from,
        frozenset(ctx.read),
        group,
    )


def _engagement_times(read: Collection[str]) -> tuple[str, ...]:
    """The time facts of the activity counts among ``read``: what a decaying rule's age is measured from."""
    times: set[str] = set()
    for name in read:
        if name == "activity.total":
            times.add("last_activity_at")
            continue
        part = activity_part(name)
        if part is not None and part[1] in ("count", "count_in_days"):
            times.add(f"activity.{part[0]}.last_at")
    return tuple(sorted(times))


def _decay_doc(raw: object, loc: Loc, ctx: RulesContext, rule_id: str | None) -> Decay | bool:
    """A ``decay:`` value: a Decay, False for ``decay: false``; True (with a problem recorded) when broken."""
    if raw is False:
        return False
    if not isinstance(raw, dict):
        msg = f"'decay' needs a mapping {{percent, days}} (e.g. {{percent: 50, days: 30}}) or false, got {raw!r}"
        ctx.add(loc, msg, rule_id)
        return True
    doc, bad = ctx.validate(DecayDoc, raw, loc, "'decay'", rule_id)
    if doc is None or bad:
        return True
    return Decay(doc.percent, doc.days)


def _rule_decay(
    raw: object, loc: Loc, ctx: RulesContext, rule_id: str | None
) -> tuple[Decay | None, tuple[str, ...]] | None:
    """The rule's decay (its own, or the ruleset's for engagement rules) and the times it ages from.

    None when the rule's ``decay`` is broken (a problem was recorded).
    """
    times = _engagement_times(ctx.read)
    if raw is None:
        return (ctx.decay if times else None), times
    decay = _decay_doc(raw, loc, ctx, rule_id)
    if decay is True:
        return None
    if decay is False:
        return None, ()
    if not times:
        msg = (
            "the rule reads no activity count, so there is nothing to decay (decay applies to rules on"
            " activity.<type>.count, activity.<type>.count_in_days(N) or activity.total)"
        )
        ctx.add(loc, msg, rule_id)
        return None
    return decay, times


def _amount(
    raw: object, loc: Loc, ctx: RulesContext, rule_id: str | None, default: float | None
) -> Callable[[Facts], float | None] | None:
    if raw is None or (raw.__class__ in _NUMBER and raw >= 0):
        fixed = None if raw is None else float(raw)

        def fixed_amount(facts: Facts) -> float | None:
            return fixed

        return fixed_amount
    if not isinstance(raw, dict):
        msg = f"'amount' needs a number (0 or more) or a mapping {{field, multiply, min, max, round}}, got {raw!r}"
        ctx.add(loc, msg, rule_id)
        return None
    doc, bad = ctx.validate(AmountDoc, raw, loc, "'amount'", rule_id)
    if doc is None or bad:
        return None
    checked = ctx.field(doc.field, Kind.NUMBER)
    if checked.kind is None:
        ctx.add((*loc, "field"), checked.message or "unknown field", rule_id, checked.suggestion)
        return None
    if checked.kind not in (Kind.NUMBER, Kind.ANY):
        msg = f"'amount' needs a numeric field, but field {doc.field!r} holds {checked.kind.value}"
        ctx.add((*loc, "field"), msg, rule_id)
        return None
    low, high = doc.min, doc.max
    if low is not None and high is not None and low > high:
        ctx.add(loc, f"'amount' has min {low:g} above max {high:g}", rule_id)
        return None
    name, multiply, digits = doc.field, doc.multiply, doc.round

    def amount(facts: Facts) -> float | None:
        x: Any = facts.get(name)
        if x.__class__ not in _NUMBER:
            return default
        value: float = x * multiply
        if low is not None and value < low:
            value = low
        if high is not None and value > high:
            value = high
        return round(value, digits)

    return amount


def _opportunity(raw: object, loc: Loc, ctx: RulesContext, rule_id: str | None) -> OpportunitySpec | None:
    conversion = ctx.conversion
    if conversion is None:
        return None
    doc: OpportunityDoc | None = OpportunityDoc()
    bad: set[str] = set()
    if raw is not None:
        doc, bad = ctx.validate(OpportunityDoc, raw, loc, "'opportunity'", rule_id, placeholders={})
    if doc is None:
        return None
    broken = bool(bad)
    stage = conversion.stage
    if doc.stage is not None:
        found = ctx.stage(doc.stage, (*loc, "stage"), rule_id)
        broken = broken or found is None
        stage = found or stage
    if doc.owner_id is not None and doc.queue is not None:
        ctx.add((*loc, "owner_id"), "give either 'owner_id' or 'queue', not both", rule_id)
        broken = True
    if doc.forecast_category is not None and not _forecast_category(
        doc.forecast_category, (*loc, "forecast_category"), ctx, rule_id
    ):
        broken = True
    if stage.closed and (doc.probability is not None or doc.forecast_category is not None):
        key = "probability" if doc.probability is not None else "forecast_category"
        msg = f"stage {stage.name!r} is closed: its probability and forecast category cannot be overridden"
        ctx.add((*loc, key), msg, rule_id)
        broken = True
    given = raw if isinstance(raw, dict) else {}
    amount_raw = doc.amount if "amount" in given else conversion.amount
    amount = _amount(amount_raw, (*loc, "amount"), ctx, rule_id, conversion.amount)
    template = conversion.name_template
    if doc.name is not None:
        template = doc.name
        before = len(ctx.src.problems)
        ctx.template(template, (*loc, "name"), rule_id)
        broken = broken or len(ctx.src.problems) != before
    if broken or amount is None:
        return None
    close_in_days = conversion.close_in_days if doc.close_in_days is None else doc.close_in_days
    return OpportunitySpec(
        stage=stage,
        close_in_days=close_in_days,
        owner_id=doc.owner_id,
        queue=doc.queue,
        name_template=template,
        amount_of=amount,
        name_of=compile_name(template),
        probability=doc.probability,
        forecast_category=doc.forecast_category,
    )


def _qualification_rule(raw: object, index: int, ctx: RulesContext, default_status: str) -> QualificationRule | None:
    loc: Loc = ("qualification", index)
    rule_id = raw_id(raw)
    placeholders = {"id": f"qualification-{index}", "status": default_status, "when": None}
    doc, bad = ctx.validate(QualificationDoc, raw, loc, "qualification rule", rule_id, placeholders)
    if doc is None:
        return None
    ctx.read = set()
    broken = bool(bad)
    compiled: Compiled | None = None
    if doc.when is not None:
        if within_limits(doc.when, (*loc, "when"), ctx, rule_id):
            compiled = compile_condition(doc.when, (*loc, "when"), ctx, rule_id)
    elif "when" not in bad:
        ctx.add((*loc, "when"), "'when' is empty; a qualification rule needs a condition", rule_id)
    status = ctx.statuses.get(doc.status)
    if status is None and "status" not in bad:
        known = ", ".join(ctx.statuses)
        hint = suggest(doc.status, ctx.statuses)
        ctx.add((*loc, "status"), f"unknown status {doc.status!r}; statuses are: {known}", rule_id, hint)
        broken = True
    if doc.convert and status is not None and not status.converted:
        converted = [s.name for s in ctx.statuses.values() if s.converted]
        msg = f"rule converts the lead but status {doc.status!r} is not a converted status"
        if not converted:
            msg += "; mark a status with 'converted: true'"
        ctx.add((*loc, "status"), msg, rule_id, converted[0] if converted else None)
        broken = True
    opportunity: OpportunitySpec | None = None
    if doc.convert:
        opportunity = _opportunity(doc.opportunity, (*loc, "opportunity"), ctx, rule_id)
        broken = broken or opportunity is None
    elif doc.opportunity is not None:
        ctx.add((*loc, "opportunity"), "'opportunity' is only used with 'convert: true'", rule_id, "convert")
        broken = True
    if broken or compiled is None:
        return None
    leaf = compiled.leaf if compiled.leaf is not None and compiled.leaf[0] == compiled.guard else None
    return QualificationRule(
        doc.id,
        doc.status,
        doc.convert,
        opportunity,
        compiled.condition,
        doc.description,
        compiled.guard,
        leaf,
        frozenset(ctx.read),
        compiled.group,
    )


# --- the whole ruleset ------------------------------------------------------------------------------------------


def compile_ruleset(data: object, text: str, src: Source) -> Ruleset | None:
    """Validate and compile parsed ruleset data; None when any problem was recorded in ``src``."""
    ctx = RulesContext(src)
    if not isinstance(data, dict):
        msg = f"the top level must be a mapping with keys such as 'version' and 'scoring', got {describe(data)}"
        ctx.add((), msg)
        return None
    doc, _ = ctx.validate(RulesetDoc, data, (), "the ruleset", placeholders={"version": "0"})
    if doc is None:
        return None
    rules = len(doc.scoring) + len(doc.qualification)
    if rules > MAX_RULES:
        ctx.add((), f"the ruleset has {rules} rules (scoring and qualification); the limit is {MAX_RULES}")
        return None
    ctx.activity_types = frozenset(doc.activity_types)
    ctx.custom = declared_fields(doc.fields, ctx)
    if doc.decay is not None:
        decay = _decay_doc(doc.decay, ("decay",), ctx, None)
        ctx.decay = decay if isinstance(decay, Decay) else None
    statuses, default_status = _statuses(doc.statuses, ctx)
    ctx.statuses = statuses
    ctx.stages = _stages(doc.stages, ctx)
    ctx.conversion = _conversion(doc.conversion, ctx)
    seen: dict[str, int | None] = {}
    scoring: list[ScoringRule] = []
    qualification: list[QualificationRule] = []
    for section, items in (("scoring", doc.scoring), ("qualification", doc.qualification)):
        for i, item in enumerate(items):
            rule_id = raw_id(item)
            if rule_id is not None:
                where = src.line((section, i, "id"))
                if rule_id in seen:
                    first = seen[rule_id]
                    at = f" (first used on line {first})" if first is not None else ""
                    ctx.add((section, i, "id"), f"rule id {rule_id!r} is used twice{at}", rule_id)
                seen.setdefault(rule_id, where)
            if section == "scoring":
                scored = _scoring_rule(item, i, ctx)
                if scored is not None:
                    scoring.append(scored)
            else:
                qualified = _qualification_rule(item, i, ctx, default_status)
                if qualified is not None:
                    qualification.append(qualified)
    clocks = tuple(ctx.clocks)  # the rules' own: routing is decided at a status change, not as time passes
    routing = None
    if doc.routing is not None:
        routing = compile_routing(doc.routing, ctx, tuple(ctx.statuses))
    duplicates = None if doc.duplicates is None else compile_duplicates(doc.duplicates, ctx)
    if src.problems:
        return None
    name = doc.name or ("ruleset" if src.path.startswith("<") else PurePath(src.path).stem)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return Ruleset(
        version=f"{doc.version}+{digest}",
        name=name,
        default_status=default_status,
        statuses=MappingProxyType(dict(statuses)),
        stages=MappingProxyType(dict(ctx.stages)),
        conversion=ctx.conversion,
        scoring_rules=tuple(scoring),
        qualification_rules=tuple(qualification),
        derived_facts=tuple(ctx.derived.items()),
        routing=routing,
        duplicates=duplicates,
        clocks=clocks,
    )
