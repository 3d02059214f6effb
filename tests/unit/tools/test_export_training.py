"""``leadflow export-training`` closes the loop: a model retrained from the export scores the same leads exactly as
the live model did, because the export holds the facts the worker decided on, with the outcomes sales reached.

The scenario (tests/export_scenario.py): a live model M0 trained with ``train --data`` on a CRM export, the pure
core deciding the leads' events with M0, the sales side closing the opportunities with the leads' known outcomes.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import orjson
import pytest
import yaml

from tests.export_scenario import CUTOFF, RULES, Loop, build_loop, decide_all
from worker.cli import main
from worker.rules import parse_ruleset
from worker.scoring import Model, default_model_path, load_model
from worker.scoring.training import parse_mapping, train_table
from worker.tools.export_training import META_COLUMNS, Export, Join, Row, Summary, export_columns, write_export


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Loop:
    return build_loop(tmp_path_factory.mktemp("loop"))


def _export(loop: Loop, where: Path, *extra: str) -> tuple[int, Path]:
    files = loop.write_files(where)
    out = where / "export"
    args = ["export-training", "--out", str(out), "--model", str(loop.model_path), "--rules", str(loop.rules)]
    args += [f"--{name}={path}" for name, path in files.items()]
    return main([*args, "--cutoff", CUTOFF.isoformat(), *extra]), out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_model_retrained_from_the_export_scores_the_leads_exactly_as_the_live_model_did(
    loop: Loop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _export(loop, tmp_path)
    printed = capsys.readouterr().out
    assert code == 0
    rows = _rows(out / "training.csv")
    # every lead of the CRM export is a row, with the outcome it reached; the open and active leads are not
    assert {r["lead_id"]: int(r["won"]) for r in rows} == loop.labels
    positives = sum(loop.labels.values())
    assert f"positives (won)          {positives:>7,}" in printed
    assert f"negatives                {len(loop.labels) - positives:>7,}" in printed
    assert (
        "skipped, no outcome yet        2  (open opportunities 1; not converted, active since the cutoff 1)" in printed
    )
    assert (
        f"live scores reproduced from the exported facts: {len(rows)} of {len(rows)} (model {loop.model.version})"
        in printed
    )

    # the facts at the conversion, not the lead's fields afterwards
    by_lead = {r["lead_id"]: r for r in rows}
    for lead_id in loop.changed_after_conversion:
        assert by_lead[lead_id]["Source"] != "Partner", lead_id
        assert by_lead[lead_id]["Visits"] != "40", lead_id
    with loop.crm.open(encoding="utf-8", newline="") as handle:
        crm = {r["Lead ID"]: r for r in csv.DictReader(handle)}
    assert all(by_lead[lead]["Source"] == crm[lead]["Source"] for lead in crm)  # the ignored repeat left no trace

    # M1, trained on the export with its mapping unchanged, is M0: every live decision's score, to 1e-9
    retrained = train_table(out / "training.csv", out / "mapping.yaml").model
    live, _ = decide_all(loop.model, RULES, loop.events)
    again, _ = decide_all(retrained, RULES, loop.events)
    assert len(again) == len(live) == len(loop.live)
    for before, after in zip(live, again, strict=True):
        b, a = orjson.loads(before), orjson.loads(after)
        assert a["event_id"] == b["event_id"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-9), b["lead_id"]
    assert [c for w in retrained.weights for c in w.coef] == pytest.approx(
        [c for w in loop.model.weights for c in w.coef], abs=1e-12
    )


def test_the_facts_after_the_conversion_would_have_taught_another_model(loop: Loop, tmp_path: Path) -> None:
    """The check above can fail: the same export with each converted lead's last facts instead trains another model."""
    code, out = _export(loop, tmp_path)
    assert code == 0
    rows = _rows(out / "training.csv")
    for row in rows:
        if row["lead_id"] in loop.changed_after_conversion:
            row["Source"], row["Visits"] = "Partner", "40"
    wrong = tmp_path / "wrong.csv"
    with wrong.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    other = train_table(wrong, out / "mapping.yaml").model
    live, _ = decide_all(loop.model, RULES, loop.events)
    wrong_scores, _ = decide_all(other, RULES, loop.events)
    differ = [
        b
        for b, a in zip(live, wrong_scores, strict=True)
        if abs(orjson.loads(a)["score"] - orjson.loads(b)["score"]) > 1e-6
    ]
    assert len(differ) > len(live) // 10


def test_converted_only_leaves_out_the_leads_that_never_converted(
    loop: Loop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _export(loop, tmp_path, "--converted-only")
    assert code == 0
    rows = _rows(out / "training.csv")
    assert {r["outcome"] for r in rows} == {"won", "lost"}
    quiet = sum(1 for lead in loop.labels if not any(o for o in loop.opportunities if lead in o.decode()))
    assert len(rows) == len(loop.labels) - quiet
    assert f"left out (--converted-only): {quiet:,} leads never converted" in capsys.readouterr().out


def test_the_default_cutoff_is_thirty_days_before_the_newest_lead_event(loop: Loop) -> None:
    join = Join(loop.model, {})
    for raw in loop.events:
        join.lead_event(raw["lead_id"].encode(), orjson.dumps(raw))
    export = join.finish()
    newest = max(dt.datetime.fromisoformat(e["occurred_at"]) for e in loop.events)
    assert export.summary.cutoff == (newest - dt.timedelta(days=30)).timestamp()
    assert export.summary.active_leads == 1  # X-active; no opportunities were read, so nobody converted
    assert {r.outcome for r in export.rows} == {"not_converted"}


def test_a_model_not_trained_from_an_export_gives_its_lead_field_features_and_names_the_others() -> None:
    model = load_model(default_model_path())
    columns, settings, skipped = export_columns(model)
    assert columns, "the shipped model reads some lead fields"
    assert all(c.path == c.name for c in columns)
    assert any(name.startswith("activity.") for name in skipped)
    mapping = {
        "name": settings["name"],
        "outcome": {"column": "won", "positive": [1]},
        "columns": {c.name: c.spec for c in columns},
    }
    parse_mapping(yaml.safe_dump(mapping))  # valid as train reads it


def test_a_live_mapping_with_a_date_gets_the_time_of_the_facts_as_its_date(loop: Loop, tmp_path: Path) -> None:
    """The retrain splits by time as the live model's training did: the latest leads by the events' times."""
    training = {**loop.model.training, "mapping": {**loop.model.training["mapping"], "date": "Created"}}
    dated = Model(loop.model.name, loop.model.intercept, loop.model.features, loop.model.weights, training)
    columns, settings, _ = export_columns(dated)
    join = Join(dated, parse_ruleset(RULES).stages)
    for value in loop.opportunities:
        join.opportunity(value)
    for value in loop.feedback:
        join.feedback(value)
    for raw in loop.events:
        join.lead_event(raw["lead_id"].encode(), orjson.dumps(raw))
    data, mapping = write_export(join.finish(CUTOFF.timestamp()), columns, settings, tmp_path / "dated")
    assert yaml.safe_load(mapping.read_text(encoding="utf-8"))["date"] == "facts_at"
    report = train_table(data, mapping)
    assert report.split == "latest 30% by 'facts_at'"


def test_cells_read_back_as_the_facts_the_model_read(loop: Loop) -> None:
    """Numbers keep every digit, yes/no is the level the model read, line breaks in text become spaces."""
    columns, settings, _ = export_columns(loop.model)
    facts = {
        "custom.origin": "API\nlate",
        "lead_source": "Web",
        "custom.visits": 0.1 + 0.2,
        "custom.newsletter": True,
        "number_of_employees": "many",
        "email": None,
    }
    summary = Summary()
    row = Row("L1", 1, "won", 0.0, "opp-1", facts, None, None, None)
    data, mapping = write_export(Export([row], summary), columns, settings, Path(loop.crm.parent / "cells"))
    written = _rows(data)[0]
    assert (written["Origin"], written["Visits"], written["Newsletter"], written["Employees"], written["Email"]) == (
        "API late",
        "0.30000000000000004",
        "yes",
        "",
        "",
    )
    assert summary.broken_cells == 1
    assert mapping.read_text(encoding="utf-8").startswith("# Written by 'leadflow export-training'")


def test_files_for_some_inputs_only_is_an_error_naming_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = tmp_path / "leads.jsonl"
    leads.write_text("", encoding="utf-8")
    assert main(["export-training", "--out", str(tmp_path / "x"), "--leads", str(leads)]) == 2
    assert "give all three files (--leads, --opportunities, --feedback" in capsys.readouterr().err


def test_a_missing_file_is_an_error_naming_it_and_what_it_should_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    args = ["export-training", "--out", str(tmp_path / "x"), f"--leads={empty}", f"--feedback={empty}"]
    assert main([*args, f"--opportunities={tmp_path / 'opps.jsonl'}"]) == 2
    err = capsys.readouterr().err
    assert f"opportunities file '{tmp_path / 'opps.jsonl'}' does not exist" in err
    assert "one opportunity.created record per line" in err


def test_scores_decided_by_another_model_are_not_compared_and_the_summary_says_so(
    loop: Loop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = loop.write_files(tmp_path)
    args = ["export-training", "--out", str(tmp_path / "export"), "--rules", str(loop.rules)]
    args += [f"--{name}={path}" for name, path in files.items()]
    assert main([*args, "--cutoff", CUTOFF.isoformat()]) == 0  # the shipped model, not the one that decided
    printed = capsys.readouterr().out
    assert "live scores reproduced" not in printed
    assert f"decided by other model versions, not checked: {loop.model.version} ({len(loop.labels)})" in printed
    assert "features no column can hold (train --data reads lead fields): activity.page_view.count" in printed
    header = list(_rows(tmp_path / "export" / "training.csv")[0])
    features = ["lead_source", "industry", "country", "title", "email", "number_of_employees", "annual_revenue"]
    assert header == [*META_COLUMNS, *features]
