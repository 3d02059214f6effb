"""Hot reload without a broker: swaps and refusals of rulesets and models, the file watch, control records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from worker.core import Engine
from worker.exceptions import ConfigError, EventError
from worker.rules import parse_ruleset
from worker.scoring import default_model_path, load_model
from worker.stream.control import ControlRecord, ControlSnapshot, decode_record, encode_record
from worker.stream.metrics import Metrics
from worker.stream.reload import FileWatch, Reloader

V1 = """
version: "v1"
scoring:
  - id: views
    per: activity.page_view.count
    points: 1
qualification:
  - id: warm
    when: {field: points, op: gte, value: 5}
    status: Contacted
"""
V2 = V1.replace('"v1"', '"v2"').replace("value: 5", "value: 3")
BROKEN = V1.replace('"v1"', '"v3"').replace("op: gte", "op: bigger")


class Handler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine


@pytest.fixture
def setup() -> tuple[Handler, Reloader, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    handler = Handler(Engine(parse_ruleset(V1), load_model(default_model_path())))
    metrics.set_versions(handler.engine.ruleset.version, handler.engine.model.version, [])
    return handler, Reloader(handler, metrics), registry


def _reloads(registry: CollectorRegistry, origin: str, result: str, kind: str = "ruleset") -> float:
    labels = {"kind": kind, "origin": origin, "result": result}
    return registry.get_sample_value("leadflow_reloads_total", labels) or 0.0


def test_a_valid_new_ruleset_replaces_the_whole_engine(setup: tuple[Handler, Reloader, CollectorRegistry]) -> None:
    handler, reloader, registry = setup
    before = handler.engine
    assert reloader.offer("ruleset", V2, "rules.yaml", "file") == "applied"
    assert handler.engine is not before  # a new engine: a batch holding the old one decides wholly with it
    assert before.ruleset.version.startswith("v1+")
    assert handler.engine.ruleset.version.startswith("v2+")
    assert handler.engine.model is before.model
    assert _reloads(registry, "file", "applied") == 1
    version = handler.engine.ruleset.version
    assert registry.get_sample_value("leadflow_ruleset_info", {"version": version}) == 1


def test_the_same_text_again_is_unchanged(setup: tuple[Handler, Reloader, CollectorRegistry]) -> None:
    handler, reloader, registry = setup
    before = handler.engine
    assert reloader.offer("ruleset", V1, "rules.yaml", "control") == "unchanged"
    assert handler.engine is before
    assert _reloads(registry, "control", "unchanged") == 1


def test_a_broken_ruleset_is_refused_logged_and_counted(
    setup: tuple[Handler, Reloader, CollectorRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    handler, reloader, registry = setup
    before = handler.engine
    assert reloader.offer("ruleset", BROKEN, "rules.yaml", "file") == "refused"
    assert handler.engine is before
    assert _reloads(registry, "file", "refused") == 1
    assert "unknown op 'bigger'" in caplog.text
    assert f"keeping {before.ruleset.version}" in caplog.text


def test_an_undecodable_control_record_is_refused(setup: tuple[Handler, Reloader, CollectorRegistry]) -> None:
    handler, reloader, registry = setup
    assert reloader.offer_record(EventError("control record at offset 3 is not JSON", reason="not_json")) == "refused"
    assert reloader.offer_record(ControlRecord("ruleset", "r.yaml", V2, 4)) == "applied"
    assert _reloads(registry, "control", "refused", kind="unknown") == 1
    assert handler.engine.ruleset.version.startswith("v2+")


def test_file_watch_reports_content_changes_once(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(V1)
    watch = FileWatch(path)
    assert watch.changed() is None
    path.write_text(V2)
    assert watch.changed() == V2
    assert watch.changed() is None
    os.utime(path, ns=(1, 1))  # touched, same content: nothing to offer
    assert watch.changed() is None
    path.unlink()
    with pytest.raises(ConfigError, match=r"cannot read .*rules\.yaml.*No such file"):
        watch.changed()
    assert watch.changed() is None  # reported once, not every interval
    path.write_text(V1)
    assert watch.changed() == V1  # back: offered again (the reloader decides whether it is new)


def test_control_records_round_trip_and_bad_ones_say_what_is_wrong() -> None:
    record = decode_record(encode_record("ruleset", V1, "rules.yaml"), 7)
    assert record == ControlRecord("ruleset", "rules.yaml", V1, 7)
    with pytest.raises(EventError, match="offset 1 is not JSON"):
        decode_record(b"{", 1)
    with pytest.raises(EventError, match="offset 2 has no value"):
        decode_record(None, 2)
    with pytest.raises(EventError, match="kind 'rules'; expected one of \\['ruleset', 'model'\\]"):
        decode_record(b'{"kind": "rules", "name": "m", "text": ""}', 3)
    tampered = encode_record("ruleset", V1, "rules.yaml").replace(b"points: 1", b"points: 9")
    with pytest.raises(EventError, match="'sha256' does not match its text"):
        decode_record(tampered, 4)


def test_the_newest_valid_ruleset_of_the_control_topic_wins() -> None:
    snapshot = ControlSnapshot(
        [
            ControlRecord("ruleset", "a.yaml", V1, 0),
            ControlRecord("ruleset", "b.yaml", V2, 1),
            ControlRecord("ruleset", "c.yaml", BROKEN, 2),
            EventError("control record at offset 3 is not JSON", reason="not_json"),
        ],
        {0: 4},
    )
    record, ruleset, refused = snapshot.newest_valid("ruleset")
    assert record is not None
    assert record.offset == 1
    assert ruleset is not None
    assert ruleset.version.startswith("v2+")
    assert len(refused) == 1
    assert "unknown op 'bigger'" in refused[0]
    assert [str(e) for e in snapshot.undecodable] == ["control record at offset 3 is not JSON"]
    assert snapshot.newest_valid("model") == (None, None, [])
    assert ControlSnapshot([], {}).newest_valid("ruleset") == (None, None, [])


def _model_text(**changes: object) -> str:
    data = json.loads(default_model_path().read_text())
    data.update(changes)
    return json.dumps(data)


def test_a_new_model_is_swapped_in_with_the_ruleset_kept(setup: tuple[Handler, Reloader, CollectorRegistry]) -> None:
    handler, reloader, registry = setup
    before = handler.engine
    shifted = _model_text(name="shifted", intercept=2.5)
    assert reloader.offer("model", shifted, "model.json", "control") == "applied"
    assert handler.engine.ruleset is before.ruleset
    assert handler.engine.model.version != before.model.version
    assert handler.engine.model.version.startswith("shifted")
    assert registry.get_sample_value("leadflow_model_info", {"version": handler.engine.model.version}) == 1
    assert _reloads(registry, "control", "applied", kind="model") == 1
    assert reloader.offer("model", shifted, "model.json", "file") == "unchanged"


def test_a_model_the_stream_cannot_feed_is_refused_with_the_feature_named(
    setup: tuple[Handler, Reloader, CollectorRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    handler, reloader, registry = setup
    before = handler.engine
    data = json.loads(default_model_path().read_text())
    data["name"] = "raw-columns"
    data["features"][0]["path"] = "Lead Origin"  # a CSV column name, not a fact the worker has
    data["features"][1]["path"] = "activity.demo_request.count_in_days(14)"  # rules compute it; facts lack it
    assert reloader.offer("model", json.dumps(data), "model.json", "file") == "refused"
    assert handler.engine is before
    assert _reloads(registry, "file", "refused", kind="model") == 1
    assert "the worker cannot provide what this model reads" in caplog.text
    assert "feature reads 'Lead Origin': unknown field 'Lead Origin'" in caplog.text
    assert "train on 'activity.demo_request.count'" in caplog.text
    assert reloader.offer("model", "{not json", "model.json", "file") == "refused"
    assert "model.json: model file is not JSON" in caplog.text


def test_a_worker_does_not_start_with_a_model_the_stream_cannot_feed(tmp_path: Path) -> None:
    from worker.engine import load_engine
    from worker.exceptions import ModelError
    from worker.settings import Settings

    data = json.loads(default_model_path().read_text())
    data["features"][0]["path"] = "Lead Origin"
    unfit = tmp_path / "unfit.json"
    unfit.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"unfit\.json: the worker cannot provide .*feature reads 'Lead Origin'"):
        load_engine(Settings(model=unfit))
