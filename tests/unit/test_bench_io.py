"""The JSON in-and-out benchmark measures what it says: every stage over the same events, all of them decided; and
polars' bulk JSON lines are orjson's bytes, which a columnar engine writing decisions from columns relies on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_io import _DECISION_SCHEMA, decisions_of, measure, same_bytes, stages


def test_each_stage_handles_every_event() -> None:
    runs = {name: fn() for name, fn in stages(200).items()}
    lengths = [len(runs[name]) for name in ("loads", "parse", "fast", "ids", "dumps")]  # type: ignore[arg-type]
    assert lengths == [200] * 5
    assert runs["arrow"].num_rows == 200  # type: ignore[attr-defined]
    assert runs["polars"].height == 200  # type: ignore[attr-defined]
    assert runs["frame"].height == len(runs["write"].splitlines())  # type: ignore[attr-defined]
    assert set(measure(50, 1)) == {*stages(50)}
    assert len(runs["core"].decisions) == 200  # type: ignore[attr-defined]


def test_polars_writes_the_core_decisions_byte_for_byte() -> None:
    decisions = decisions_of(300)
    assert {d["action"] for d in decisions} >= {"none", "converted"}  # conversions carry an opportunity id
    assert same_bytes(decisions)


_TEXT = st.text(max_size=40)
_FLOAT = st.floats(allow_nan=False, allow_infinity=False)
_FACTOR = st.builds(  # in the core's key order
    lambda feature, label, contribution: {"feature": feature, "label": label, "contribution": contribution},
    _TEXT,
    _TEXT,
    _FLOAT,
)


@st.composite
def _decisions(draw: st.DrawFn) -> dict[str, Any]:
    """A decision's shape with any texts and finite floats (the values orjson and polars must write alike)."""
    out: dict[str, Any] = {}
    for key, kind in _DECISION_SCHEMA.items():
        if key == "schema_version":
            out[key] = 1
        elif key in ("points", "score"):
            out[key] = draw(_FLOAT)
        elif key == "factors":
            out[key] = draw(st.lists(_FACTOR, max_size=5))
        elif key == "matched_rules":
            out[key] = draw(st.lists(_TEXT, max_size=4))
        else:
            assert str(kind) == "String"
            out[key] = draw(st.none() | _TEXT) if key in ("opportunity_id", "duplicate_of") else draw(_TEXT)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(_decisions(), min_size=1, max_size=8))
def test_polars_writes_any_decision_as_orjson_does(decisions: list[dict[str, Any]]) -> None:
    assert same_bytes(decisions)
