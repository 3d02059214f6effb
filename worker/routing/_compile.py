"""Validate and compile the ``routing:`` section of a ruleset, recording every problem in the ruleset's source.

Called by the ruleset compiler with its context, so problems carry the file, line, rule id and a suggestion, and
routing conditions are compiled exactly like qualification rules' (over the same facts, plus the account facts).

Why one module of about 530 lines: one compiler class walks the whole section (pools, members, hours, caps,
SLA, rules, territories) with one set of messages; its parts check one another's names (pools, overflow).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from worker.conditions import (
    ROUTING_FIELDS,
    ConditionContext,
    FieldCheck,
    Kind,
    Loc,
    compile_condition,
    describe,
    raw_id,
    suggest,
    within_limits,
)
from worker.routing._limits import MAX_MEMBERS, MAX_OUT_OF_OFFICE, MAX_POOLS, MAX_ROUTING_RULES, MAX_TERRITORIES
from worker.routing._pool import DAYS, STRATEGIES, Caps, Member, Pool, WorkingHours
from worker.routing._route import ROUTING_FACTS, Routing, RoutingRule, Territory
from worker.routing._schema import (
    AccountsDoc,
    BandDoc,
    CapsDoc,
    MemberDoc,
    PoolDoc,
    RoutingDoc,
    RoutingRuleDoc,
    SlaDoc,
    TargetDoc,
    TerritoryDoc,
    WindowDoc,
)
from worker.routing._target import Sla, Target

__all__ = ["compile_routing"]

_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_TARGET_KEYS = ("user", "queue", "pool")
_PENDING = Target("queue", "")
"""Stands in for a pool's overflow until the default is known."""


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _zone(name: str | None, loc: Loc, ctx: ConditionContext, what: str) -> bool:
    """Whether ``name`` (None: not given) is a known IANA time zone (a problem is recorded when not)."""
    if name is None:
        return True
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        hint = suggest(name, _zones(), 0.7)
        ctx.add(loc, f"{what}: unknown time zone {name!r}; use an IANA name like 'Europe/Berlin'", None, hint)
        return False
    return True


@dataclass(slots=True)
class RoutingContext(ConditionContext):
    """The condition compiler's context for routing rules: they can also read the account facts (``ROUTING_FIELDS``)."""

    def field(self, name: object, expect: Kind = Kind.TEXT) -> FieldCheck:
        if isinstance(name, str) and name in ROUTING_FIELDS:
            self.read.add(name)
            return FieldCheck(ROUTING_FIELDS[name])
        checked = ConditionContext.field(self, name, expect)
        if checked.kind is None and isinstance(name, str):
            close = difflib.get_close_matches(name, list(ROUTING_FIELDS), n=1, cutoff=0.8)
            if close:
                return FieldCheck(None, f"unknown field {name!r}", close[0])
        return checked


class _Compiler:
    """Walks one routing section; ``pools`` are the defined pool names, known before any target is checked.

    ``ctx`` is the ruleset's context (problems, declared fields, derived facts); routing rules' conditions are
    compiled in a :class:`RoutingContext` that shares its source and derived facts; ``statuses`` are the ruleset's.
    """

    def __init__(self, ctx: ConditionContext, pool_names: Mapping[str, int], statuses: Collection[str]) -> None:
        self.ctx = ctx
        self.rules_ctx = RoutingContext(ctx.src, ctx.activity_types, ctx.custom, derived=ctx.derived)
        self.pool_names = pool_names
        self.statuses = statuses
        self.broken = False
        self.reads_account = False

    def add(self, loc: Loc, message: str, rule_id: str | None = None, suggestion: str | None = None) -> None:
        self.ctx.add(loc, message, rule_id, suggestion)
        self.broken = True

    def target(self, raw: object, loc: Loc, what: str, rule_id: str | None = None) -> Target | None:
        """A ``{user: ID} | {queue: NAME} | {pool: NAME}`` mapping; a pool must be defined."""
        if not isinstance(raw, dict):
            self.add(
                loc,
                f"{what} needs one of {{user: ID}}, {{queue: NAME}} or {{pool: NAME}}, got {describe(raw)}",
                rule_id,
            )
            return None
        doc, bad = self.ctx.validate(TargetDoc, raw, loc, what, rule_id)
        if doc is None or bad:
            self.broken = True
            return None
        given = [k for k in _TARGET_KEYS if getattr(doc, k) is not None]
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            self.add(loc, f"{what} needs exactly one of user, queue or pool, got {found}", rule_id)
            return None
        kind = given[0]
        name: str = getattr(doc, kind)
        if kind == "pool" and name not in self.pool_names:
            known = ", ".join(self.pool_names) or "none defined"
            hint = suggest(name, self.pool_names)
            self.add((*loc, "pool"), f"{what}: unknown pool {name!r}; pools are: {known}", rule_id, hint)
            return None
        return Target(kind, name)  # type: ignore[arg-type]  # kind is one of _TARGET_KEYS

    def rule(self, raw: object, index: int) -> RoutingRule | None:
        loc: Loc = ("routing", "rules", index)
        rule_id = raw_id(raw)
        doc, bad = self.ctx.validate(RoutingRuleDoc, raw, loc, "routing rule", rule_id)
        if doc is None or bad:
            self.broken = True
            return None
        self.rules_ctx.read = set()
        compiled = None
        if doc.when is None:
            self.add((*loc, "when"), "'when' is empty; a routing rule needs a condition", rule_id)
        elif within_limits(doc.when, (*loc, "when"), self.rules_ctx, rule_id):
            compiled = compile_condition(doc.when, (*loc, "when"), self.rules_ctx, rule_id)
        self.reads_account = self.reads_account or any(name in ROUTING_FACTS for name in self.rules_ctx.read)
        target = self.target(doc.to, (*loc, "to"), "'to'", rule_id)
        if compiled is None or target is None:
            self.broken = True
            return None
        return RoutingRule(doc.id, target, compiled.condition, doc.description)

    def territory(self, raw: object, index: int) -> Territory | None:
        loc: Loc = ("routing", "territories", index)
        rule_id = raw_id(raw)
        doc, bad = self.ctx.validate(TerritoryDoc, raw, loc, "territory", rule_id)
        if doc is None or bad:
            self.broken = True
            return None
        low = high = None
        if doc.employees is not None:
            band, bad = self.ctx.validate(BandDoc, doc.employees, (*loc, "employees"), "'employees'", rule_id)
            if band is None or bad:
                self.broken = True
                return None
            low, high = band.min, band.max
            if low is not None and high is not None and low > high:
                self.add((*loc, "employees"), f"'employees' has min {low} above max {high}", rule_id)
                return None
            if low is None and high is None:
                self.add((*loc, "employees"), "'employees' needs 'min', 'max' or both", rule_id)
                return None
        lists = {k: _folded(getattr(doc, k)) for k in ("country", "state", "industry")}
        if all(v is None for v in lists.values()) and low is None and high is None:
            msg = (
                "a territory needs at least one of country, state, industry or employees"
                " (for every other lead, use routing.default)"
            )
            self.add(loc, msg, rule_id)
            return None
        target = self.target(doc.to, (*loc, "to"), "'to'", rule_id)
        if target is None:
            return None
        return Territory(doc.id, target, lists["country"], lists["state"], lists["industry"], low, high)

    def hours(self, raw: object, loc: Loc, what: str) -> WorkingHours | None:
        """``{mon: "09:00-17:00", ...}`` (also ``mon-fri`` ranges); days not given are days off."""
        if not isinstance(raw, dict) or not raw:
            self.add(
                loc,
                f'{what}: working_hours needs a mapping of days to hours like {{mon-fri: "09:00-17:00"}},'
                f" got {describe(raw)}",
            )
            return None
        days: list[list[tuple[int, int]]] = [[] for _ in DAYS]
        given: set[int] = set()
        ok = True
        for key, value in raw.items():
            key_loc = (*loc, key)
            covered = _day_range(key)
            if covered is None:
                hint = suggest(key, [*DAYS, "mon-fri", "sat-sun"])
                self.add(
                    key_loc,
                    f"{what}: unknown day {key!r}; days are {', '.join(DAYS)} or a range like 'mon-fri'",
                    None,
                    hint,
                )
                ok = False
                continue
            span = _span(value)
            if isinstance(span, str):
                self.add(key_loc, f"{what}: {span}")
                ok = False
                continue
            for day in covered:
                if day in given:
                    self.add(key_loc, f"{what}: {DAYS[day]!r} is given twice in working_hours")
                    ok = False
                given.add(day)
                days[day].append(span)
        if not ok:
            return None
        return tuple(tuple(d) for d in days)

    def caps(self, raw: object, loc: Loc, what: str, base: Caps) -> Caps | None:
        """Caps over ``base``: keys given here replace the pool's."""
        if raw is None:
            return base
        doc, bad = self.ctx.validate(CapsDoc, raw, loc, f"{what}: 'caps'")
        if doc is None or bad:
            self.broken = True
            return None
        per_day = base.per_day if doc.per_day is None else doc.per_day
        count, seconds = base.window_count, base.window_seconds
        if doc.per_window is not None:
            window, bad = self.ctx.validate(WindowDoc, doc.per_window, (*loc, "per_window"), f"{what}: 'per_window'")
            if window is None or bad:
                self.broken = True
                return None
            count, seconds = window.count, window.hours * 3600.0
        return Caps(per_day, count, seconds)

    def out_of_office(self, raw: list[Any], loc: Loc, what: str) -> tuple[tuple[float, float], ...] | None:
        if len(raw) > MAX_OUT_OF_OFFICE:
            self.add(loc, f"{what} has {len(raw)} out-of-office periods; the limit is {MAX_OUT_OF_OFFICE}")
            return None
        periods: list[tuple[float, float]] = []
        for i, item in enumerate(raw):
            item_loc = (*loc, i)
            if not isinstance(item, dict) or set(item) != {"from", "to"}:
                extra = sorted(set(item) - {"from", "to"}) if isinstance(item, dict) else []
                hint = suggest(extra[0], ["from", "to"]) if extra else None
                msg = f"{what}: an out-of-office period is {{from: <date-time>, to: <date-time>}}, got {describe(item)}"
                if extra:
                    msg = f"{what}: unknown key {extra[0]!r} in an out-of-office period (it has 'from' and 'to')"
                self.add(item_loc, msg, None, hint)
                continue
            start = _instant(item["from"])
            end = _instant(item["to"])
            for key, value in (("from", start), ("to", end)):
                if isinstance(value, str):
                    self.add((*item_loc, key), f"{what}: {value}")
            if isinstance(start, float) and isinstance(end, float):
                if end <= start:
                    self.add(item_loc, f"{what}: an out-of-office period must end after it starts")
                else:
                    periods.append((start, end))
        return tuple(periods)

    def pool(self, raw: object, index: int, default: Target) -> Pool | None:
        loc: Loc = ("routing", "pools", index)
        doc, bad = self.ctx.validate(PoolDoc, raw, loc, "pool")
        if doc is None or bad:
            self.broken = True
            return None
        what = f"pool {doc.name!r}"
        ok = True
        if doc.strategy not in STRATEGIES:
            hint = suggest(doc.strategy, STRATEGIES) or ("weighted_round_robin" if "weight" in doc.strategy else None)
            self.add(
                (*loc, "strategy"),
                f"{what}: unknown strategy {doc.strategy!r}; use {' or '.join(STRATEGIES)}",
                None,
                hint,
            )
            ok = False
        ok = _zone(doc.timezone, (*loc, "timezone"), self.ctx, what) and ok
        hours = None if doc.working_hours is None else self.hours(doc.working_hours, (*loc, "working_hours"), what)
        caps = self.caps(doc.caps, (*loc, "caps"), what, Caps())
        overflow = default
        if doc.overflow is not None:
            found = self.target(doc.overflow, (*loc, "overflow"), f"{what}: 'overflow'")
            if found is not None and found == Target("pool", doc.name):
                self.add((*loc, "overflow"), f"{what} overflows to itself; overflow to a queue, a user or another pool")
                found = None
            ok = found is not None and ok
            overflow = found or default
        sla_ok, sla = self.sla(doc.sla, (*loc, "sla"), what)
        if not doc.members:
            self.add((*loc, "members"), f"{what} has no members; list at least one under 'members'")
            return None
        if len(doc.members) > MAX_MEMBERS:
            self.add((*loc, "members"), f"{what} has {len(doc.members)} members; the limit is {MAX_MEMBERS}")
            return None
        members: list[Member] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(doc.members):
            member = self.member(item, (*loc, "members", i), doc, hours, caps, seen)
            if member is not None:
                members.append(member)
        if not ok or caps is None or (doc.working_hours is not None and hours is None) or not sla_ok:
            self.broken = True
            return None
        return Pool(doc.name, doc.strategy, tuple(members), overflow, sla, doc.timezone)

    def sla(self, raw: object, loc: Loc, what: str) -> tuple[bool, Sla | None]:
        """``(ok, sla)``: the pool's SLA (None without one); ok is False when it is broken (a problem is recorded)."""
        if raw is None:
            return True, None
        doc, bad = self.ctx.validate(SlaDoc, raw, loc, f"{what}: 'sla'")
        if doc is None or bad:
            self.broken = True
            return False, None
        then = doc.then
        if then == "next_member":
            return True, Sla(doc.accept_within_minutes * 60.0, None)
        if isinstance(then, dict) and set(then) == {"escalate"}:
            target = self.target(then["escalate"], (*loc, "then", "escalate"), f"{what}: 'escalate'")
            return target is not None, None if target is None else Sla(doc.accept_within_minutes * 60.0, target)
        hint = suggest(then, ["next_member"]) if isinstance(then, str) else None
        if isinstance(then, dict):
            hint = suggest(next(iter(then), ""), ["escalate"])
        msg = f"{what}: 'then' is next_member or {{escalate: {{user: ID}} | {{queue: NAME}}}}, got {describe(then)}"
        self.add((*loc, "then"), msg, None, hint)
        return False, None

    def member(
        self, raw: object, loc: Loc, pool: PoolDoc, hours: WorkingHours | None, caps: Caps | None, seen: dict[str, int]
    ) -> Member | None:
        doc, bad = self.ctx.validate(MemberDoc, raw, loc, f"a member of pool {pool.name!r}")
        if doc is None or bad:
            self.broken = True
            return None
        what = f"pool {pool.name!r} member {doc.id!r}"
        if doc.id in seen:
            line = self.ctx.src.line(("routing", "pools", *loc[2:3], "members", seen[doc.id]))
            at = f" (first on line {line})" if line is not None else ""
            self.add((*loc, "id"), f"member {doc.id!r} is listed twice in pool {pool.name!r}{at}")
            return None
        seen[doc.id] = int(loc[-1])
        if doc.weight is not None and pool.strategy == "round_robin":
            msg = f"{what} has a weight, but pool {pool.name!r} uses round_robin, where every member counts the same"
            self.add((*loc, "weight"), msg, None, "weighted_round_robin")
            return None
        ok = _zone(doc.timezone, (*loc, "timezone"), self.ctx, what)
        own_hours = hours
        if doc.working_hours is not None:
            own_hours = self.hours(doc.working_hours, (*loc, "working_hours"), what)
            ok = ok and own_hours is not None
        own_caps = None if caps is None else self.caps(doc.caps, (*loc, "caps"), what, caps)
        away = self.out_of_office(doc.out_of_office, (*loc, "out_of_office"), what)
        if not ok or own_caps is None or away is None:
            self.broken = True
            return None
        weight = 1 if pool.strategy == "round_robin" else (100 if doc.weight is None else doc.weight)
        return Member(doc.id, weight, doc.active, doc.timezone or pool.timezone, own_hours, own_caps, away)


def compile_routing(raw: object, ctx: ConditionContext, statuses: Collection[str]) -> Routing | None:
    """The compiled ``routing:`` section; None when any problem was recorded (every one is, not just the first).

    ``ctx`` is the ruleset compiler's context (problems go to its source); ``statuses`` are the ruleset's lead
    statuses, in order, that ``lead_statuses`` may name.
    """
    loc: Loc = ("routing",)
    doc, bad = ctx.validate(RoutingDoc, raw, loc, "'routing'")
    if doc is None or bad:
        return None
    for key, items, limit in (
        ("pools", doc.pools, MAX_POOLS),
        ("rules", doc.rules, MAX_ROUTING_RULES),
        ("territories", doc.territories, MAX_TERRITORIES),
    ):
        if len(items) > limit:
            ctx.add((*loc, key), f"routing has {len(items)} {key}; the limit is {limit}")
            return None
    pool_names: dict[str, int] = {}
    for i, item in enumerate(doc.pools):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str):
            if name in pool_names:
                line = ctx.src.line((*loc, "pools", pool_names[name], "name"))
                at = f" (first on line {line})" if line is not None else ""
                ctx.add((*loc, "pools", i, "name"), f"pool {name!r} is defined twice{at}")
            pool_names.setdefault(name, i)
    compiler = _Compiler(ctx, pool_names, statuses)
    default = compiler.target(doc.default, (*loc, "default"), "'default'")
    match = True
    if doc.accounts is not None:
        accounts, _ = ctx.validate(AccountsDoc, doc.accounts, (*loc, "accounts"), "'accounts'")
        compiler.broken = compiler.broken or accounts is None
        match = accounts.match if accounts is not None else True
    lead_statuses = _lead_statuses(doc.lead_statuses, (*loc, "lead_statuses"), compiler)
    ids: dict[str, Loc] = {}
    for section, items in (("rules", doc.rules), ("territories", doc.territories)):
        for i, item in enumerate(items):
            rule_id = raw_id(item)
            if rule_id is None:
                continue
            if rule_id in ids:
                line = ctx.src.line(ids[rule_id])
                at = f" (first on line {line})" if line is not None else ""
                compiler.add((*loc, section, i, "id"), f"routing id {rule_id!r} is used twice{at}", rule_id)
            ids.setdefault(rule_id, (*loc, section, i, "id"))
    pools: dict[str, Pool] = {}
    for i, item in enumerate(doc.pools):
        pool = compiler.pool(item, i, default or _PENDING)
        if pool is not None and pool.name not in pools:
            pools[pool.name] = pool
    _overflow_cycles(pools, pool_names, compiler)
    derived_before = dict(ctx.derived)
    rules = [compiler.rule(item, i) for i, item in enumerate(doc.rules)]
    territories = [compiler.territory(item, i) for i, item in enumerate(doc.territories)]
    if compiler.broken or default is None:
        return None
    derived = tuple((name, compute) for name, compute in ctx.derived.items() if name not in derived_before)
    return Routing(
        default=default,
        match_accounts=match,
        pools=MappingProxyType(pools),
        rules=tuple(r for r in rules if r is not None),
        territories=tuple(t for t in territories if t is not None),
        derived_facts=derived,
        reads_account=compiler.reads_account,
        lead_statuses=lead_statuses,
    )


def _lead_statuses(raw: list[Any], loc: Loc, compiler: _Compiler) -> frozenset[str]:
    """The statuses on entering which a lead itself is routed (not only its opportunity)."""
    known = compiler.statuses
    found: set[str] = set()
    for i, status in enumerate(raw):
        if not isinstance(status, str) or status not in known:
            hint = suggest(status, known) if isinstance(status, str) else None
            msg = f"lead_statuses: {status!r} is not a status of this ruleset; statuses are: {', '.join(known)}"
            compiler.add((*loc, i), msg, None, hint)
            continue
        found.add(status)
    return frozenset(found)


def _overflow_cycles(pools: Mapping[str, Pool], position: Mapping[str, int], compiler: _Compiler) -> None:
    """Report pools whose overflow leads back to themselves through other pools (a lead would never land);
    ``position`` is each pool's index in the YAML list (pools that failed to compile are not in ``pools``)."""
    for start in pools:
        seen = [start]
        target = pools[start].overflow
        while target.kind == "pool" and target.id in pools:
            if target.id == start:
                loop = " -> ".join([*seen, start])
                index = position[start]
                compiler.add(("routing", "pools", index, "overflow"), f"pool overflow goes round in a circle: {loop}")
                return
            if target.id in seen:
                break
            seen.append(target.id)
            target = pools[target.id].overflow


def _folded(value: list[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    return frozenset(v.strip().casefold() for v in items)


def _day_range(key: object) -> list[int] | None:
    """``"mon"`` -> [0]; ``"mon-fri"`` -> [0..4]; None when not days."""
    if not isinstance(key, str):
        return None
    parts = [p.strip().lower() for p in key.split("-")]
    if not all(p in DAYS for p in parts) or len(parts) > 2:
        return None
    first, last = DAYS.index(parts[0]), DAYS.index(parts[-1])
    if last < first:
        return None
    return list(range(first, last + 1))


def _span(value: object) -> tuple[int, int] | str:
    """``"09:00-17:00"`` -> minutes ``(540, 1020)``; a message when it is not such a span."""
    match = _HOURS.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return f'hours are written like "09:00-17:00", got {describe(value)}'
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        return f"{value!r} is not a time of day (00:00 to 24:00)"
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        return f"hours {value!r} end before they start; the end must be after the start on the same day"
    return start, end


def _instant(value: object) -> float | str:
    """Epoch seconds of an ISO date-time with its UTC offset; a message when it is not one."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return f'{value!r} is not a date-time; write it like "2026-12-20T00:00:00+01:00"'
    elif isinstance(value, date):
        day = value.isoformat()
        return f'{day!r} is a date; give a date-time with its offset like "{day}T00:00:00+01:00"'
    else:
        return f'an out-of-office time is a date-time like "2026-12-20T00:00:00+01:00", got {describe(value)}'
    if moment.tzinfo is None or moment.utcoffset() is None:
        return f'{value!s} has no UTC offset; add one, e.g. "{moment.isoformat()}+01:00" or "Z" for UTC'
    return moment.timestamp()
