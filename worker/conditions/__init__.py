"""The condition language that rules and routing share: fields, operators, limits, and the condition compiler.

A ``when`` tree (``{field, op, value}`` leaves under ``all``/``any``/``not``) is checked against the known fields
(:mod:`._fields`), its operators (:mod:`._operators`) prepare their values and build tests, and
:func:`compile_condition` turns the tree into one closure over a lead's facts. :class:`ConditionContext` carries
what the compiler knows; :mod:`worker.rules` and :mod:`worker.routing` each extend it. See ``docs/RULES.md``.
"""

from __future__ import annotations

from worker.conditions._compile import (
    Clock,
    Compiled,
    ConditionContext,
    compile_condition,
    declared_fields,
    describe,
    raw_id,
    suggest,
    within_limits,
)
from worker.conditions._derived import derived_fact
from worker.conditions._fields import (
    FIXED_FIELDS,
    KINDS,
    ROUTING_FIELDS,
    FieldCheck,
    Kind,
    activity_part,
    can_change,
    check_field,
)
from worker.conditions._freemail import FREE_EMAIL_DOMAINS
from worker.conditions._loader import Loc, Source, format_loc, read_yaml
from worker.conditions._model import Condition, Facts
from worker.conditions._operators import OP_ALIASES, OPERATORS, Operator, Takes, Test, domain_of, inline_form
from worker.conditions._schema import PATTERN_HINTS, Name, RuleId, StrictDoc, Text

__all__ = [
    "FIXED_FIELDS",
    "FREE_EMAIL_DOMAINS",
    "KINDS",
    "OPERATORS",
    "OP_ALIASES",
    "PATTERN_HINTS",
    "ROUTING_FIELDS",
    "Clock",
    "Compiled",
    "Condition",
    "ConditionContext",
    "Facts",
    "FieldCheck",
    "Kind",
    "Loc",
    "Name",
    "Operator",
    "RuleId",
    "Source",
    "StrictDoc",
    "Takes",
    "Test",
    "Text",
    "activity_part",
    "can_change",
    "check_field",
    "compile_condition",
    "declared_fields",
    "derived_fact",
    "describe",
    "domain_of",
    "format_loc",
    "inline_form",
    "raw_id",
    "read_yaml",
    "suggest",
    "within_limits",
]
