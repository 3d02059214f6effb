"""Which rules differ between two ruleset files, by id: added, removed, or defined differently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RuleChanges", "diff_rules"]

_SECTIONS = ("scoring", "qualification")
_NOT_SEMANTIC = frozenset({"description"})


@dataclass(frozen=True, slots=True)
class RuleChanges:
    """Rule ids only in the new ruleset, only in the old one, and in both with another definition."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    qualification_order_changed: bool = False
    other_sections: tuple[str, ...] = field(default=())  # top-level keys other than the rules that differ


def _rules(data: Any, section: str) -> list[tuple[str, Any]]:
    items = data.get(section) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [
        (str(rule["id"]), {k: v for k, v in rule.items() if k not in _NOT_SEMANTIC})
        for rule in items
        if isinstance(rule, dict) and "id" in rule
    ]


def diff_rules(new_path: Path, old_path: Path) -> RuleChanges:
    """Compare two ruleset files that already loaded; a file that cannot be read again gives no changes."""
    try:
        new = yaml.safe_load(new_path.read_text(encoding="utf-8"))
        old = yaml.safe_load(old_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return RuleChanges()
    new_rules = dict(r for s in _SECTIONS for r in _rules(new, s))
    old_rules = dict(r for s in _SECTIONS for r in _rules(old, s))
    new_order = [rule_id for rule_id, _ in _rules(new, "qualification") if rule_id in old_rules]
    old_order = [rule_id for rule_id, _ in _rules(old, "qualification") if rule_id in new_rules]
    keys = (set(new) if isinstance(new, dict) else set()) | (set(old) if isinstance(old, dict) else set())
    others = sorted(
        k for k in keys - {*_SECTIONS, "version", "name", "description"} if (new or {}).get(k) != (old or {}).get(k)
    )
    return RuleChanges(
        added=tuple(r for r in new_rules if r not in old_rules),
        removed=tuple(r for r in old_rules if r not in new_rules),
        changed=tuple(r for r in new_rules if r in old_rules and new_rules[r] != old_rules[r]),
        qualification_order_changed=new_order != old_order,
        other_sections=tuple(others),
    )
