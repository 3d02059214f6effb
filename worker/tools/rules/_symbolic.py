"""A small symbolic reading of conditions: can a condition hold at all, and for which facts.

A condition becomes a bounded disjunctive normal form (an ``any`` of ``all``s of tests, each test maybe negated).
One ``all`` holds for some lead when, field by field, some value satisfies every test on that field: the value
is either missing, a yes/no, a number or a text (the kinds a fact can hold), and each kind has its own domain
(number intervals, text candidates checked with the compiled tests, ...).

The answers are three-valued. ``UNSAT`` is only given with a proof; a test this module does not understand (an
operator it does not know, a test reading other facts) counts as "could be true or false", so it can turn an
answer into ``UNKNOWN`` but never into a wrong ``UNSAT``. ``SAT`` comes with a witness: facts on which the
compiled tests were run and all held.

Why one module of about 580 lines: the normal form, the per-kind domains and the solver are one argument
(an ``UNSAT`` is only as sound as all three together); they are read and changed together.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from worker.conditions import Condition, Facts

__all__ = [
    "NOW",
    "All",
    "AnyOf",
    "Domain",
    "Leaf",
    "Lit",
    "Node",
    "Not",
    "Result",
    "Solver",
    "TooBig",
    "Verdict",
    "describe_value",
]

NOW = 1_800_000_000.0
"""The event time of witnesses (2027-01-15): only differences to it matter."""

_INF = math.inf
_DAY = 86400.0
_NUMBER = (int, float)

# Negated operators are documented as the exact opposite of a positive one: read them as that one, negated.
_NEGATED = {
    "ne": "eq",
    "not_in": "in",
    "ne_ci": "eq_ci",
    "not_in_ci": "in_ci",
    "not_within_days": "within_days",
    "is_not_null": "is_null",
}
_TEXT_SEARCH = ("contains", "starts_with", "ends_with")
_TEXT_OPS = frozenset(
    {"eq_ci", "in_ci", *_TEXT_SEARCH, *(f"{op}_ci" for op in _TEXT_SEARCH)},
)
_NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte", "between"})
_CONSTANT_ON_TEXT = _NUMERIC_OPS | {"is_null", "within_days"}
"""Known operators that are False on every text."""


class Verdict(Enum):
    """Whether a condition can hold."""

    SAT = "can hold"
    UNSAT = "can never hold"
    UNKNOWN = "not decided"


@dataclass(frozen=True, slots=True)
class Result:
    """A verdict, the witness facts of a ``SAT`` (only the fields the condition reads) or why it is ``UNSAT``."""

    verdict: Verdict
    witness: Mapping[str, object] | None = None
    why: str | None = None


class TooBig(Exception):
    """The condition expands into more alternatives than the analysis allows."""


# --- conditions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Leaf:
    """One test ``{field, op, value}`` as written, with its compiled condition."""

    field: str
    op: str
    value: object
    condition: Condition
    pure: bool
    """The test reads only its field (the operator compiles to a test of one value)."""
    line: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of the test as written (two equal tests have equal keys)."""
        return (self.field, self.op, json.dumps(self.value, sort_keys=True, default=str))

    def describe(self) -> str:
        if self.value is None:
            return f"{self.field} {self.op}"
        return f"{self.field} {self.op} {describe_value(self.value)}"


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    inner: Node


Node = Leaf | All | AnyOf | Not


def describe_value(value: object) -> str:
    """A value as a reader of the YAML would write it."""
    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class Lit:
    """A test or its negation."""

    leaf: Leaf
    positive: bool

    @property
    def op(self) -> str:
        """The operator read positively (``ne`` is a negated ``eq``)."""
        return _NEGATED.get(self.leaf.op, self.leaf.op)

    @property
    def holds_as(self) -> bool:
        """What the positive form of ``op`` must give for this literal to hold."""
        return self.positive != (self.leaf.op in _NEGATED)

    def holds(self, facts: Facts) -> bool:
        return bool(self.leaf.condition(facts)) is self.positive

    def describe(self) -> str:
        return self.leaf.describe() if self.positive else f"not ({self.leaf.describe()})"


Conj = frozenset[Lit]


# --- domains ----------------------------------------------------------------------------------------------------

_KINDS_ALL = frozenset({"null", "bool", "number", "text"})


@dataclass(frozen=True, slots=True)
class Domain:
    """The values a fact can hold at all: which kinds, and for numbers a range (whole numbers or not)."""

    kinds: frozenset[str] = _KINDS_ALL
    low: float = -_INF
    high: float = _INF
    integer: bool = False
    texts: frozenset[str] | None = None
    note: str | None = None
    """Why the domain is narrower than "anything", for messages."""


# --- number sets: unions of intervals ---------------------------------------------------------------------------

Interval = tuple[float, bool, float, bool]  # low, low included, high, high included
_ALL_NUMBERS: list[Interval] = [(-_INF, False, _INF, False)]


def _nonempty(iv: Interval) -> bool:
    lo, lo_in, hi, hi_in = iv
    return lo < hi or (lo == hi and lo_in and hi_in)


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for alo, alo_in, ahi, ahi_in in a:
        for blo, blo_in, bhi, bhi_in in b:
            lo, lo_in = (alo, alo_in) if alo > blo else (blo, blo_in) if blo > alo else (alo, alo_in and blo_in)
            hi, hi_in = (ahi, ahi_in) if ahi < bhi else (bhi, bhi_in) if bhi < ahi else (ahi, ahi_in and bhi_in)
            if _nonempty((lo, lo_in, hi, hi_in)):
                out.append((lo, lo_in, hi, hi_in))
    return out


def _complement(a: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    lo, lo_in = -_INF, False
    for ilo, ilo_in, ihi, ihi_in in sorted(a):
        gap = (lo, lo_in, ilo, not ilo_in)
        if _nonempty(gap):
            out.append(gap)
        lo, lo_in = ihi, not ihi_in
    if _nonempty((lo, lo_in, _INF, False)):
        out.append((lo, lo_in, _INF, False))
    return out


def _points(values: Iterable[float]) -> list[Interval]:
    return [(v, True, v, True) for v in sorted(set(values))]


def _integer_in(iv: Interval) -> int | None:
    lo, lo_in, hi, hi_in = iv
    if lo == -_INF:
        if hi == _INF:
            return 0
        n = math.floor(hi)
        return n - 1 if n == hi and not hi_in else n
    n = math.ceil(lo)
    if n == lo and not lo_in:
        n += 1
    return n if n < hi or (n == hi and hi_in) else None


def _samples(ivs: list[Interval], integer: bool) -> Iterator[float]:
    """A few numbers of the set, integers only when ``integer``."""
    for iv in ivs:
        lo, lo_in, hi, hi_in = iv
        if integer:
            n = _integer_in(iv)
            if n is not None:
                yield n
                if n + 1 < hi or (n + 1 == hi and hi_in):
                    yield n + 1
            continue
        if lo == hi:
            yield lo
            continue
        if lo_in:
            yield lo
        if hi_in:
            yield hi
        if lo == -_INF:
            yield 0.0 if hi > 0 else hi - 1.0
        elif hi == _INF:
            yield lo + 1.0
        else:
            yield (lo + hi) / 2


def _number_set(op: str, value: object) -> list[Interval] | None:
    """The numbers on which the known operator ``op`` holds; None for an operator this module does not read."""
    if op == "eq":
        return _points([float(value)]) if isinstance(value, _NUMBER) else []
    if op == "in":
        values = value if isinstance(value, list) else []
        return _points(float(v) for v in values if isinstance(v, _NUMBER))
    if op in _NUMERIC_OPS:
        if op == "between":
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, _NUMBER) for v in value)):
                return None
            return [(float(value[0]), True, float(value[1]), True)]
        if not isinstance(value, _NUMBER) or isinstance(value, bool):
            return None
        bound = float(value)
        return {
            "gt": [(bound, False, _INF, False)],
            "gte": [(bound, True, _INF, False)],
            "lt": [(-_INF, False, bound, False)],
            "lte": [(-_INF, False, bound, True)],
        }[op]
    if op in _TEXT_OPS or op == "is_null":
        return []
    return None


# --- texts ------------------------------------------------------------------------------------------------------


def _texts(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, str)]


def _implies(p_op: str, needle: str, n_op: str, other: str) -> bool:
    """Whether a text having ``needle`` as ``p_op`` (contains/starts/ends, maybe _ci) has ``other`` as ``n_op``."""
    p_ci, n_ci = p_op.endswith("_ci"), n_op.endswith("_ci")
    if p_ci and not n_ci:
        return False
    if n_ci:
        needle, other = needle.casefold(), other.casefold()
    p_base, n_base = p_op.removesuffix("_ci"), n_op.removesuffix("_ci")
    if n_base == "contains":
        return other in needle
    if n_base == p_base == "starts_with":
        return needle.startswith(other)
    if n_base == p_base == "ends_with":
        return needle.endswith(other)
    return False


def _text_candidates(lits: Sequence[Lit]) -> Iterator[str]:
    """Texts built from the positive searches' needles (prefix + contained + suffix), in a few spellings."""
    wants: dict[str, list[list[str]]] = {base: [] for base in _TEXT_SEARCH}
    for lit in lits:
        if lit.holds_as and lit.op.removesuffix("_ci") in wants:
            wants[lit.op.removesuffix("_ci")].append(_texts(lit.leaf.value))
    groups = [g for base in _TEXT_SEARCH for g in wants[base]]
    starts = len(wants["starts_with"])
    contains = len(wants["contains"])
    for choice in itertools.islice(itertools.product(*groups), 64):
        prefixes = sorted(choice[:starts], key=len)
        middle = choice[starts : starts + contains]
        suffixes = sorted(choice[starts + contains :], key=len)
        prefix = prefixes[-1] if prefixes else ""
        suffix = suffixes[-1] if suffixes else ""
        for filler in ("", "x", " q "):
            text = prefix + filler + "".join(middle) + filler + suffix
            yield from (text, text.upper(), text.casefold(), text.title())


class _Text:
    """Can one text satisfy these literals? (The ``is_null``/number tests are False on texts.)"""

    def __init__(self, lits: Sequence[Lit], test: Callable[[object], bool]) -> None:
        self.lits = lits
        self.test = test

    def solve(self, allowed: frozenset[str] | None) -> tuple[Verdict, object]:
        if any(lit.op in _CONSTANT_ON_TEXT and lit.holds_as for lit in self.lits):
            return Verdict.UNSAT, None  # a number or null test that must hold: no text passes it
        lits = [lit for lit in self.lits if lit.op not in _CONSTANT_ON_TEXT]
        exact: set[str] | None = set(allowed) if allowed is not None else None
        folded: set[str] | None = None
        for lit in lits:
            if not lit.holds_as or lit.op not in ("eq", "in", "eq_ci", "in_ci"):
                continue
            values = _texts(lit.leaf.value) if lit.op in ("in", "in_ci") or isinstance(lit.leaf.value, str) else []
            if lit.op in ("eq", "in"):
                exact = set(values) if exact is None else exact & set(values)
            else:
                fold = {v.casefold() for v in values}
                folded = fold if folded is None else folded & fold
        if exact is not None:  # the text is one of a few: try each one
            return self._first(sorted(exact))
        if folded is not None:
            if not folded:
                return Verdict.UNSAT, None
            spellings = [v for lit in lits for v in _texts(lit.leaf.value) if v.casefold() in folded]
            candidates = [*sorted(folded), *spellings, *(f.upper() for f in sorted(folded))]
            found = self._first(candidates)
            if found[0] is Verdict.SAT:
                return found
            only_case_blind = all(lit.op.endswith("_ci") or lit.op in _CONSTANT_ON_TEXT for lit in lits)
            return (Verdict.UNSAT, None) if only_case_blind else (Verdict.UNKNOWN, None)
        found = self._first(itertools.chain(_text_candidates(lits), ("", "x", "Zq")))
        if found[0] is Verdict.SAT:
            return found
        return (Verdict.UNSAT, None) if self._refuted(lits) else (Verdict.UNKNOWN, None)

    def _first(self, candidates: Iterable[str]) -> tuple[Verdict, object]:
        """The first candidate passing every test; UNSAT when the candidates were all the texts allowed."""
        for text in candidates:
            if self.test(text):
                return Verdict.SAT, text
        return Verdict.UNSAT, None

    @staticmethod
    def _refuted(lits: Sequence[Lit]) -> bool:
        """A positive search that implies a negated one, or two positive prefixes (suffixes) that conflict."""
        searches = [lit for lit in lits if lit.op.removesuffix("_ci") in _TEXT_SEARCH]
        positive = [lit for lit in searches if lit.holds_as]
        for p in positive:
            needles = _texts(p.leaf.value)
            for n in searches:
                if n.holds_as or not needles:
                    continue
                others = _texts(n.leaf.value)
                if all(any(_implies(p.op, a, n.op, b) for b in others) for a in needles):
                    return True
            for q in positive:
                if q is p or q.op != p.op or p.op.removesuffix("_ci") == "contains":
                    continue
                fold = p.op.endswith("_ci")
                mine = [a.casefold() if fold else a for a in needles]
                theirs = [b.casefold() if fold else b for b in _texts(q.leaf.value)]
                same = str.startswith if p.op.startswith("starts") else str.endswith
                if not any(same(a, b) or same(b, a) for a in mine for b in theirs):
                    return True
        return False


# --- the solver -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Solver:
    """Decides conjunctions and whole conditions; ``domains`` narrows what a field can hold."""

    fact_domain: Callable[[str], Domain]
    base: Mapping[str, object]
    """The facts a witness starts from (a blank lead at :data:`NOW`)."""
    cap: int = 512
    """At most this many alternatives in a condition's normal form."""
    _cache: dict[Conj, Result] = field(default_factory=dict)

    # -- whole conditions

    def dnf(self, node: Node, positive: bool = True) -> list[Conj]:
        """The alternatives of ``node`` (negated when not ``positive``), without those proved impossible."""
        if isinstance(node, Leaf):
            return [frozenset({Lit(node, positive)})]
        if isinstance(node, Not):
            return self.dnf(node.inner, not positive)
        conjunctive = isinstance(node, All) == positive
        parts = [self.dnf(p, positive) for p in node.parts]
        if not conjunctive:
            out: list[Conj] = list(dict.fromkeys(c for part in parts for c in part))
            if len(out) > self.cap:
                raise TooBig
            return out
        product: list[Conj] = [frozenset()]
        for part in sorted(parts, key=len):
            if len(product) * len(part) > self.cap * 8:
                raise TooBig
            merged = dict.fromkeys(a | b for a in product for b in part)
            product = [c for c in merged if self.solve(c).verdict is not Verdict.UNSAT]
            if len(product) > self.cap:
                raise TooBig
        return product

    def check(self, node: Node) -> Result:
        """Whether ``node`` can hold; raises :class:`TooBig` when it has too many alternatives."""
        undecided = False
        for conj in self.dnf(node):
            result = self.solve(conj)
            if result.verdict is Verdict.SAT:
                return result
            undecided = undecided or result.verdict is Verdict.UNKNOWN
        return Result(Verdict.UNKNOWN) if undecided else Result(Verdict.UNSAT, why=self._whys(node))

    def _whys(self, node: Node) -> str:
        """Why a condition never holds: the reason of its first alternative (before pruning)."""
        reasons: list[str] = []
        for conj in self._unpruned(node, True)[:8]:
            why = self.solve(conj).why
            if why and why not in reasons:
                reasons.append(why)
        return "; ".join(reasons[:3]) if reasons else "none of its alternatives can hold"

    def _unpruned(self, node: Node, positive: bool) -> list[Conj]:
        if isinstance(node, Leaf):
            return [frozenset({Lit(node, positive)})]
        if isinstance(node, Not):
            return self._unpruned(node.inner, not positive)
        parts = [self._unpruned(p, positive)[:8] for p in node.parts]
        if isinstance(node, All) == positive:
            return [frozenset().union(*choice) for choice in itertools.islice(itertools.product(*parts), 8)]
        return [c for part in parts for c in part][:8]

    # -- one conjunction

    def solve(self, conj: Conj) -> Result:
        """Whether every literal of ``conj`` can hold at once."""
        cached = self._cache.get(conj)
        if cached is None:
            cached = self._cache[conj] = self._solve(conj)
        return cached

    def _solve(self, conj: Conj) -> Result:
        by_key: dict[tuple[str, str, str], bool] = {}
        for lit in conj:
            seen = by_key.setdefault(lit.leaf.key, lit.positive)
            if seen != lit.positive:
                return Result(Verdict.UNSAT, why=f"`{lit.leaf.describe()}` cannot be both true and false")
        fields: dict[str, list[Lit]] = {}
        for lit in conj:
            fields.setdefault(lit.leaf.field, []).append(lit)
        witness: dict[str, object] = {}
        undecided = False
        for name, lits in sorted(fields.items()):
            domain = self.fact_domain(name)
            verdict, value = self._field(lits, domain)
            if verdict is Verdict.UNSAT:
                # name what the field can hold only when that is part of the reason
                needs_note = domain.note is not None and self._field(lits, Domain())[0] is not Verdict.UNSAT
                return Result(Verdict.UNSAT, why=self._why(lits, domain.note if needs_note else None))
            if verdict is Verdict.UNKNOWN:
                undecided = True
            else:
                witness[name] = value
        if undecided:
            return Result(Verdict.UNKNOWN)
        facts = {**self.base, **witness}
        if all(lit.holds(facts) for lit in conj):
            return Result(Verdict.SAT, witness)
        return Result(Verdict.UNKNOWN)

    @staticmethod
    def _why(lits: Sequence[Lit], note: str | None) -> str:
        tests = " and ".join(sorted(f"`{lit.describe()}`" for lit in lits))
        if len(lits) == 1:
            return f"{tests} is never true" + (f" ({note})" if note else "")
        return f"{tests} cannot all be true" + (f" ({note})" if note else "")

    def _field(self, lits: Sequence[Lit], domain: Domain) -> tuple[Verdict, object]:
        """Whether one value in ``domain`` satisfies all of ``lits`` (tests of one field), kind by kind."""
        name = lits[0].leaf.field
        pure = [lit for lit in lits if lit.leaf.pure]
        # other tests that read more than their field are not used here; the witness is checked against them
        relative = [lit for lit in lits if not lit.leaf.pure and lit.op == "within_days"]

        def test(value: object) -> bool:
            facts = {**self.base, name: value}
            return all(lit.holds(facts) for lit in pure)

        undecided = False
        for kind in ("null", "bool", "number", "text"):
            if kind not in domain.kinds:
                continue
            if kind in ("null", "bool", "text"):
                # within_days is False for any value but a number
                if any(lit.holds_as for lit in relative):
                    continue
                if kind == "text":
                    verdict, value = _Text(pure, test).solve(domain.texts)
                else:
                    values: tuple[object, ...] = (None,) if kind == "null" else (True, False)
                    found = [v for v in values if test(v)]
                    verdict, value = (Verdict.SAT, found[0]) if found else (Verdict.UNSAT, None)
            else:
                verdict, value = self._number(domain, pure, relative, test)
            if verdict is Verdict.SAT:
                return verdict, value
            undecided = undecided or verdict is Verdict.UNKNOWN
        return (Verdict.UNKNOWN, None) if undecided else (Verdict.UNSAT, None)

    @staticmethod
    def _number(
        domain: Domain, pure: Sequence[Lit], relative: Sequence[Lit], test: Callable[[object], bool]
    ) -> tuple[Verdict, object]:
        allowed = _intersect(_ALL_NUMBERS, [(domain.low, True, domain.high, True)])
        absolute = False
        for lit in pure:
            ivs = _number_set(lit.op, lit.leaf.value)
            if ivs is None:  # an operator not read here: checked on the samples below
                continue
            absolute = absolute or bool(ivs)
            allowed = _intersect(allowed, ivs if lit.holds_as else _complement(ivs))
        if relative and not absolute:  # tests against `now` only: exact for a fixed now (only differences count)
            for lit in relative:
                if not isinstance(lit.leaf.value, _NUMBER):
                    continue
                edge = NOW - float(lit.leaf.value) * _DAY
                ivs = [(edge, True, _INF, False)]
                allowed = _intersect(allowed, ivs if lit.holds_as else _complement(ivs))
        if not allowed:
            return Verdict.UNSAT, None
        if domain.integer and all(_integer_in(iv) is None for iv in allowed):
            return Verdict.UNSAT, None
        for value in _samples(allowed, domain.integer):
            number = int(value) if domain.integer or float(value).is_integer() else value
            if test(number):
                return Verdict.SAT, number
        if all(lo == hi for lo, _, hi, _ in allowed):  # a few numbers, and each was tried
            return Verdict.UNSAT, None
        return Verdict.UNKNOWN, None  # the set is not empty, but no sample passed every test
