"""Read ruleset YAML into plain data, remembering the line of every key and list item, and collect problems."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from worker.exceptions import Problem

__all__ = ["Loc", "Source", "format_loc", "read_yaml"]

Loc = tuple[str | int, ...]
"""Where a value sits in the document: keys and list indexes from the top, e.g. ``("scoring", 2, "points")``."""

_MAX_DEPTH = 64
_MAX_NODES = 100_000
_TOO_BIG = (
    f"the document is nested deeper than {_MAX_DEPTH} levels or holds more than {_MAX_NODES:,} values"
    " (the limits of a ruleset document)"
)


def format_loc(loc: Loc) -> str:
    """``("scoring", 2, "when", "all", 0)`` -> ``scoring[2].when.all[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(slots=True)
class Source:
    """One ruleset text being compiled: its path, the line of every location, and the problems found so far."""

    path: str
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line(self, loc: Loc) -> int | None:
        """The 1-based line of ``loc``, or of its nearest enclosing location that has one."""
        while True:
            found = self.lines.get(loc)
            if found is not None or not loc:
                return found
            loc = loc[:-1]

    def add(self, loc: Loc, message: str, rule_id: str | None = None, suggestion: str | None = None) -> None:
        """Record a problem at ``loc`` (its dotted location prefixes the message)."""
        text = f"{format_loc(loc)}: {message}" if loc else message
        self.problems.append(Problem(text, self.path, self.line(loc), rule_id, suggestion))


class _Reader:
    """Turns composed YAML nodes into dicts, lists and scalars while recording lines."""

    def __init__(self, loader: yaml.SafeLoader, src: Source) -> None:
        self.loader = loader
        self.src = src
        self.nodes = 0
        self.too_big = False

    def convert(self, node: yaml.Node, loc: Loc, depth: int) -> object:
        self.nodes += 1
        if depth > _MAX_DEPTH or self.nodes > _MAX_NODES:
            if not self.too_big:
                self.too_big = True
                self.src.add(loc[:1], _TOO_BIG)
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc, depth)
        if isinstance(node, yaml.SequenceNode):
            items: list[object] = []
            for index, child in enumerate(node.value):
                self.src.lines[(*loc, index)] = child.start_mark.line + 1
                items.append(self.convert(child, (*loc, index), depth + 1))
            return items
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.src.add(loc, f"value {node.value!r} cannot be read: {getattr(exc, 'problem', exc)}")
            return None

    def _mapping(self, node: yaml.MappingNode, loc: Loc, depth: int) -> dict[str, object]:
        out: dict[str, object] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.src.problems.append(
                    Problem(f"{format_loc(loc) or 'top level'}: keys must be plain words", self.src.path, key_line)
                )
                continue
            try:
                raw_key = self.loader.construct_object(key_node)
            except yaml.YAMLError:
                raw_key = key_node.value
            key = raw_key if isinstance(raw_key, str) else str(key_node.value)
            where = (*loc, key)
            if key in out:
                self.src.lines[where] = key_line
                self.src.add(where, f"key {key!r} is given twice in the same mapping")
                continue
            self.src.lines[where] = key_line
            out[key] = self.convert(value_node, where, depth + 1)
        return out


_OPENING = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSING = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _too_deep(text: str) -> bool:
    """Whether the document nests collections deeper than ``_MAX_DEPTH``, found by PyYAML's scanner, which reads
    tokens in a loop (its composer recurses per level, and a deep enough document would exhaust Python's stack)."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPENING):
            depth += 1
            if depth > _MAX_DEPTH:
                return True
        elif isinstance(token, _CLOSING):
            depth -= 1
    return False


def read_yaml(text: str, src: Source) -> object:
    """Parse ``text`` into plain data; a syntax error or an empty document becomes a problem (returns None)."""
    loader = None
    try:
        if _too_deep(text):
            src.problems.append(Problem(_TOO_BIG, src.path, None))
            return None
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            src.problems.append(Problem("the ruleset is empty; it needs at least 'version'", src.path, None))
            return None
        src.lines[()] = node.start_mark.line + 1
        return _Reader(loader, src).convert(node, (), 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            start = f" that starts on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            what += f" ({exc.context}{start})"
        line = None if mark is None else mark.line + 1
        src.problems.append(Problem(f"YAML syntax error: {what}", src.path, line))
        return None
    except yaml.YAMLError as exc:
        src.problems.append(Problem(f"YAML syntax error: {exc}", src.path, None))
        return None
    finally:
        if loader is not None:
            loader.dispose()
