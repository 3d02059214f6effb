"""Opportunity name templates: ``$company - $lead_source`` rendered over the facts, then tidied."""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from worker.conditions import Facts

__all__ = ["FALLBACK_NAME", "FactTemplate", "compile_name", "render_value", "tidy"]

FALLBACK_NAME = "Opportunity"

_SEP = r"[-–—|/:,·]"
_LEADING = re.compile(rf"^(?:{_SEP}\s*)+")
_TRAILING = re.compile(rf"(?:\s*{_SEP})+$")
_REPEATED = re.compile(rf"\s({_SEP})(?:\s+{_SEP})+\s")
_SPACES = re.compile(r"\s+")


class FactTemplate(string.Template):
    """``string.Template`` whose placeholders may be dotted fact paths: ``$custom.deal_size``."""

    idpattern = r"(?a:[_a-z][_a-z0-9]*(?:\.[_a-z0-9]+)*)"


def render_value(value: object) -> str:
    """How a fact shows in a name: nothing for None, whole numbers without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def tidy(text: str) -> str:
    """Collapse the separators and spaces that missing values leave behind."""
    text = _SPACES.sub(" ", text).strip()
    previous = None
    while previous != text:
        previous = text
        text = _REPEATED.sub(r" \1 ", text)
        text = _LEADING.sub("", text)
        text = _TRAILING.sub("", text).strip()
    return text


class _Values(dict[str, str]):
    """The facts as template values; a fact that is missing renders as nothing."""

    def __init__(self, facts: Facts) -> None:
        super().__init__()
        self.facts = facts

    def __missing__(self, key: str) -> str:
        return render_value(self.facts.get(key))


def compile_name(template: str) -> Callable[[Facts], str]:
    """A function rendering ``template`` over the facts (``Opportunity`` when nothing is left)."""
    compiled = FactTemplate(template)

    def name(facts: Facts) -> str:
        return tidy(compiled.substitute(_Values(facts))) or FALLBACK_NAME

    return name
