"""The ruleset version: the declared version plus a hash of the exact text, so any edit is visible."""

from __future__ import annotations

import hashlib
from pathlib import Path

from worker.rules import load_ruleset, parse_ruleset

TEXT = 'version: "2.3"\nname: mine\nscoring:\n  - {id: a, per: activity.page_view.count, points: 1}\n'


def test_version_is_declared_version_plus_content_hash() -> None:
    ruleset = parse_ruleset(TEXT)
    assert ruleset.version == "2.3+" + hashlib.sha256(TEXT.encode()).hexdigest()[:8]
    assert ruleset.name == "mine"


def test_version_changes_when_the_text_changes() -> None:
    first = parse_ruleset(TEXT).version
    assert parse_ruleset(TEXT).version == first
    assert parse_ruleset(TEXT + "# a comment\n").version != first
    assert parse_ruleset(TEXT.replace("points: 1", "points: 2")).version != first


def test_load_ruleset_reads_the_file_and_names_it_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "inbound.yaml"
    path.write_text(TEXT.replace("name: mine\n", ""), encoding="utf-8")
    ruleset = load_ruleset(str(path))
    assert ruleset.name == "inbound"
    assert ruleset.version.startswith("2.3+")
    assert ruleset == load_ruleset(path)  # rules compare by what they say, not by their compiled closures
