"""The column mapping: every mistake names its column or key, says why, and suggests the near miss."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.exceptions import TrainingError
from worker.scoring.training import load_mapping, parse_mapping

GOOD = """
outcome: {column: Converted, positive: [1, "Won"]}
columns:
  Lead Source: lead_source
  Lead Origin: {field: custom.lead_origin, kind: categorical, label: origin}
  TotalVisits: {field: custom.total_visits, kind: numeric, bins: 0}
exclude: [Tags]
"""
HEADER = ("Converted", "Lead Source", "Lead Origin", "TotalVisits", "Tags")


def _check(text: str, header: tuple[str, ...] | None) -> None:
    mapping = parse_mapping(text, source="m.yaml")
    if header is not None:
        mapping.check_columns(header, "leads.csv")


def error(text: str, header: tuple[str, ...] | None = None) -> TrainingError:
    with pytest.raises(TrainingError) as info:
        _check(text, header)
    return info.value


def test_a_good_mapping_reads_with_defaults() -> None:
    mapping = parse_mapping(GOOD, default_name="acme")
    assert mapping.name == "acme"
    assert mapping.positive == {"1", "won"}
    assert [(c.column, c.field, c.kind, c.label) for c in mapping.columns] == [
        ("Lead Source", "lead_source", "categorical", "Lead Source"),
        ("Lead Origin", "custom.lead_origin", "categorical", "origin"),
        ("TotalVisits", "custom.total_visits", "numeric", "TotalVisits"),
    ]
    assert {"select", "n/a", ""} <= mapping.missing_values
    assert (mapping.holdout, mapping.seed, mapping.max_auc, mapping.calibration) == (0.3, 42, 0.85, "platt")
    mapping.check_columns(HEADER, "leads.csv")


def test_an_unknown_lead_field_suggests_the_near_miss() -> None:
    e = error(GOOD.replace("Lead Source: lead_source", "Lead Source: lead_sorce"))
    assert "columns.'Lead Source': 'lead_sorce' is not a lead field (did you mean 'lead_source'?)" in str(e)
    assert "or custom.<name> for your own" in str(e)
    assert e.column == "Lead Source"


def test_a_column_missing_from_the_data_suggests_the_header_name() -> None:
    e = error(GOOD, ("Converted", "Lead Sources", "Lead Origin", "TotalVisits", "Tags"))
    assert str(e).splitlines() == [
        "m.yaml: 2 problems:",
        "  columns.'Lead Source': column 'Lead Source' is not in leads.csv (did you mean 'Lead Sources'?)",
        "  column 'Lead Sources' of leads.csv is neither mapped nor excluded: add it under 'columns' or 'exclude' "
        "(or set 'unmapped: ignore')",
    ]
    assert e.column == "Lead Source"


def test_a_data_column_neither_mapped_nor_excluded_is_an_error_unless_ignored() -> None:
    e = error(GOOD, (*HEADER, "Lead Quality"))
    assert "column 'Lead Quality' of leads.csv is neither mapped nor excluded" in str(e)
    assert e.column == "Lead Quality"
    parse_mapping(GOOD + "unmapped: ignore\n").check_columns((*HEADER, "Lead Quality"), "leads.csv")


def test_every_problem_is_listed_at_once() -> None:
    e = error(GOOD.replace("kind: categorical", "kind: text").replace("exclude: [Tags]", "exclude: [Tags]\nleakag: {}"))
    text = str(e)
    assert text.startswith("m.yaml: 2 problems:")
    assert "unknown key 'leakag' (did you mean 'leakage'?)" in text
    assert "columns.'Lead Origin': kind 'text' is not one of categorical, numeric, boolean, yes_no, free_email" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('outcome: {column: Converted, positive: [1, "Won"]}', "outcome: Converted"), "'outcome' must be an object"),
        (('positive: [1, "Won"]', "positive: []"), "'outcome.positive' must list the values that mean converted"),
        (("exclude: [Tags]", "exclude: [Tags, TotalVisits]"), "column 'TotalVisits' is both mapped and excluded"),
        (("exclude: [Tags]", "exclude: [Tags, Converted]"), "the outcome column 'Converted' cannot also be mapped"),
        (
            ("Lead Source: lead_source", "Lead Source: first_name"),
            "'first_name' is personal data and is not used as a model feature",
        ),
        (
            ("Lead Source: lead_source", "Lead Source: {field: annual_revenue, kind: categorical}"),
            "the lead field 'annual_revenue' is numeric, not categorical",
        ),
        (
            ("custom.total_visits, kind: numeric, bins: 0", "custom.lead_origin, kind: numeric"),
            "field 'custom.lead_origin' is already the target of column 'Lead Origin'",
        ),
        (("bins: 0", "bins: 1"), "'bins' must be 0 (a line) or 2-50, got 1"),
        (("bins: 0", "bin: 3"), "unknown key 'bin' (did you mean 'bins'?)"),
        (("exclude: [Tags]", "exclude: [Tags]\nevaluation: {holdout: 2}"), "'evaluation.holdout' must be a number"),
        (("exclude: [Tags]", "exclude: [Tags]\ncalibration: isotonic"), "'calibration' must be 'platt' or 'none'"),
    ],
)
def test_mapping_mistakes_say_where_and_why(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in GOOD
    assert message in str(error(GOOD.replace(old, new)))


def test_not_yaml_and_not_an_object() -> None:
    assert "m.yaml: not valid YAML" in str(error("outcome: [unclosed"))
    assert "a mapping is a YAML object with 'outcome' and 'columns', got list" in str(error("- a\n- b\n"))


def test_load_mapping_names_a_missing_file_and_takes_the_name_from_the_folder(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"mapping\.yaml: mapping file not found"):
        load_mapping(tmp_path / "mapping.yaml")
    folder = tmp_path / "acme"
    folder.mkdir()
    (folder / "mapping.yaml").write_text(GOOD, encoding="utf-8")
    assert load_mapping(folder / "mapping.yaml").name == "acme"


def test_the_shipped_example_mapping_is_valid() -> None:
    path = Path(__file__).parents[3] / "examples" / "x-education" / "mapping.yaml"
    mapping = load_mapping(path)
    assert mapping.outcome == "Converted"
    assert {"Tags", "Lead Quality", "Lead Profile", "Last Notable Activity"} <= mapping.exclude


def test_c_is_chosen_by_cross_validation_unless_the_mapping_fixes_it() -> None:
    default = parse_mapping(GOOD)
    assert default.c_grid == (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    assert default.splits == 10
    assert parse_mapping(GOOD + "model: {C: cv}\n").c_grid == default.c_grid
    fixed = parse_mapping(GOOD + "model: {C: 0.3}\nevaluation: {holdout: 0.3, seed: 1, splits: 4}\n")
    assert (fixed.c, fixed.c_grid, fixed.splits) == (0.3, (), 4)
    assert parse_mapping(GOOD + "model: {C: [0.1, 1]}\n").c_grid == (0.1, 1.0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("model: {C: auto}", "'model.C' must be a number, a list of numbers to choose from, or 'cv', got 'auto'"),
        ("model: {C: [0.1, -1]}", "'model.C' must be a number in [1e-06, 1e+06], got -1"),
        ("evaluation: {splits: 0}", "'evaluation.splits' must be a number in [1, 1000], got 0"),
    ],
)
def test_bad_c_or_splits_say_what_is_expected(extra: str, message: str) -> None:
    assert message in str(error(GOOD + extra + "\n"))
