"""The real worker process against the embedded broker: what comes out on which topic."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import Flow, activity, upsert, write_rules

pytestmark = pytest.mark.integration


def _qualifying_lead(lead_id: str) -> list[dict[str, object]]:
    return [
        upsert(
            lead_id,
            f"{lead_id}-e1",
            first_name="Ada",
            last_name="Lovelace",
            company="Analytical Engines Ltd",
            email="ada@engines.example",
            title="VP Engineering",
            lead_source="Web",
            industry="Technology",
            annual_revenue=5_000_000,
            number_of_employees=120,
            country="GB",
        ),
        activity(lead_id, f"{lead_id}-e2", "page_view", "2026-11-03T10:00:00Z", count=5),
        activity(lead_id, f"{lead_id}-e3", "demo_request", "2026-11-04T15:30:00+01:00"),
    ]


def test_a_qualifying_lead_becomes_one_opportunity_with_stage_probability_and_forecast(
    flow: Flow, rules_file: Path
) -> None:
    flow.start_worker(LEADFLOW_RULES=str(rules_file))
    flow.produce(_qualifying_lead("L-hot"))

    decisions = [o.json for o in flow.read(flow.settings.topic_decisions, 3)]
    assert [d["event_id"] for d in decisions] == ["L-hot-e1", "L-hot-e2", "L-hot-e3"]
    assert [d["action"] for d in decisions] == ["none", "status_changed", "converted"]
    assert [d["status"] for d in decisions] == ["Open", "Contacted", "Qualified"]
    assert decisions[2]["points"] == 55  # 50 for the demo request + 1 per page view
    assert decisions[2]["matched_rules"] == ["demo-request", "page-views", "hot"]

    (record,) = flow.quiet_read(flow.settings.topic_opportunities, 3.0)
    opportunity = record.json
    assert record.key == opportunity["opportunity_id"].encode()
    assert opportunity["lead_id"] == "L-hot"
    assert opportunity["stage_name"] == "Needs Analysis"
    assert opportunity["probability"] == 20
    assert opportunity["forecast_category"] == "Pipeline"
    assert opportunity["amount"] == 12000
    assert opportunity["expected_revenue"] == 2400
    assert opportunity["queue"] == "Enterprise AEs"
    assert opportunity["owner_id"] is None
    # converted at the event's time (14:30 UTC on the 4th); closes 45 days later
    assert opportunity["converted_at"] == "2026-11-04T15:30:00+01:00"
    assert opportunity["close_date"] == (dt.date(2026, 11, 4) + dt.timedelta(days=45)).isoformat()
    assert opportunity["account"]["name"] == "Analytical Engines Ltd"
    assert opportunity["contact"]["email"] == "ada@engines.example"
    assert opportunity["converted_by_rule"] == "hot"
    assert decisions[2]["opportunity_id"] == opportunity["opportunity_id"]


def test_an_unqualified_lead_gets_decisions_and_no_opportunity(flow: Flow, rules_file: Path) -> None:
    flow.start_worker(LEADFLOW_RULES=str(rules_file))
    flow.produce(
        [
            upsert("L-cold", "c1", company="Nobody Inc", lead_source="Purchased List"),
            activity("L-cold", "c2", "page_view"),
            activity("L-cold", "c3", "unsubscribe"),
        ]
    )
    decisions = [o.json for o in flow.read(flow.settings.topic_decisions, 3)]
    assert [d["status"] for d in decisions] == ["Open", "Open", "Unqualified"]
    assert [d["action"] for d in decisions] == ["none", "none", "disqualified"]
    assert all(0 <= d["score"] <= 1 for d in decisions)
    assert all(d["factors"] for d in decisions)
    assert flow.quiet_read(flow.settings.topic_opportunities, 3.0) == []


def test_a_replay_converts_nothing_twice(flow: Flow, rules_file: Path) -> None:
    flow.start_worker(LEADFLOW_RULES=str(rules_file))
    events = _qualifying_lead("L-replay")
    flow.produce(events)
    first = [o.json for o in flow.read(flow.settings.topic_decisions, 3)]

    flow.produce(events)  # the producer retried everything
    flow.produce([activity("L-replay", "later-demo", "demo_request", "2026-11-10T09:00:00Z")])  # new engagement
    flow.read(flow.settings.topic_decisions, 4)
    decisions = [o.json for o in flow.quiet_read(flow.settings.topic_decisions, 3.0)]
    # the replayed events were decided before: nothing is sent again for them (their decisions are out already)
    assert [d["event_id"] for d in decisions] == [*(d["event_id"] for d in first), "later-demo"]
    assert decisions[3]["status"] == "Qualified"
    assert decisions[3]["action"] == "none"  # already converted: qualification is not re-run

    opportunities = flow.quiet_read(flow.settings.topic_opportunities, 3.0)
    assert len(opportunities) == 1
    assert flow.metric("leadflow_duplicate_events_total") == 3


BAD_INPUTS: list[tuple[str, bytes | None, bytes | None]] = [
    ("not_json", b"L-bad", b"{this is not json"),
    ("not_utf8", b"L-bad", b"\xff\xfe\x00garbage"),
    ("not_an_object", b"L-bad", b"[1, 2, 3]"),
    ("missing_lead_id", b"L-bad", b'{"schema_version": 1, "event_type": "lead.activity"}'),
    (
        "unknown_event_type",
        b"L-bad",
        b'{"schema_version":1,"event_id":"x","event_type":"lead.deleted","occurred_at":"2026-11-02T09:00:00Z",'
        b'"lead_id":"L-bad"}',
    ),
    (
        "unsupported_schema_version",
        b"L-bad",
        b'{"schema_version":9,"event_id":"x","event_type":"lead.activity","occurred_at":"2026-11-02T09:00:00Z",'
        b'"lead_id":"L-bad","activity":{"type":"page_view"}}',
    ),
    (
        "schema_violation",
        b"L-bad",
        b'{"schema_version":1,"event_id":"x","event_type":"lead.activity","occurred_at":"yesterday",'
        b'"lead_id":"L-bad","activity":{"type":"page_view"}}',
    ),
    ("key_mismatch", b"someone-else", orjson.dumps(activity("L-bad", "km", "page_view"))),
    ("key_mismatch", None, orjson.dumps(activity("L-bad", "nokey", "page_view"))),
    ("tombstone", b"L-bad", None),
]


def test_every_bad_input_goes_to_the_dead_letter_topic_and_later_events_are_processed(
    flow: Flow, rules_file: Path
) -> None:
    flow.start_worker(LEADFLOW_RULES=str(rules_file))
    records = [(key, value) for _reason, key, value in BAD_INPUTS]
    # bad and good records interleaved on the same partition: the good ones must not be held up
    flow.produce([records[0], *(e for e in [_qualifying_lead("L-bad")[0]]), *records[1:]])
    flow.produce(_qualifying_lead("L-bad")[1:])

    dead = flow.read(flow.settings.topic_dlq, len(BAD_INPUTS))
    assert len(dead) == len(BAD_INPUTS)
    # dead letters keep their original key, so they may land on different partitions: match them by content
    got = sorted((d.headers["leadflow.reason"].decode(), d.key or b"", d.value or b"") for d in dead)
    assert got == sorted((reason, key or b"", value or b"") for reason, key, value in BAD_INPUTS)
    for letter in dead:
        assert letter.headers["leadflow.source_topic"].decode() == flow.settings.topic_leads
        assert int(letter.headers["leadflow.source_offset"]) >= 0
        assert letter.headers["leadflow.error_class"] == b"EventError"
        assert letter.headers["leadflow.error_message"]
        dt.datetime.fromisoformat(letter.headers["leadflow.failed_at"].decode())
    same_partition = [int(d.headers["leadflow.source_offset"]) for d in dead if d.key == b"L-bad"]
    assert len(set(same_partition)) == len(same_partition)

    decisions = [o.json for o in flow.read(flow.settings.topic_decisions, 3)]
    assert [d["event_id"] for d in decisions] == ["L-bad-e1", "L-bad-e2", "L-bad-e3"]
    assert len(flow.read(flow.settings.topic_opportunities, 1)) == 1
    assert flow.metric("leadflow_dead_letters_total", reason="key_mismatch") == 2
    assert flow.metric("leadflow_dead_letters_total", reason="not_json") == 1
    assert flow.metric("leadflow_dead_letters_total", reason="tombstone") == 1
    assert flow.metric("leadflow_records_refused_total", source="leads", reason="tombstone") == 1


def test_a_broken_ruleset_stops_start_up_with_every_problem_named(flow: Flow, tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path,
        'version: "1"\n'
        "scoring:\n"
        "  - id: revenue\n"
        "    when: {field: anual_revenue, op: gte, value: 1000000}\n"
        "    points: 10\n"
        "qualification:\n"
        "  - id: hot\n"
        "    when: {field: points, op: greater_than, value: 50}\n"
        "    status: Qualifed\n",
        "broken.yaml",
    )
    result = flow.run_worker_to_exit(timeout=60, LEADFLOW_RULES=str(rules))
    assert result.returncode == 2
    err = result.stderr
    assert f"{rules}:4" in err
    assert "'annual_revenue'" in err  # the suggestion
    assert f"{rules}:8" in err
    assert "'gt'" in err or "'gte'" in err
    assert "'Qualified'" in err
    assert "Traceback" not in err


def test_a_missing_model_file_stops_start_up(flow: Flow, tmp_path: Path) -> None:
    result = flow.run_worker_to_exit(timeout=60, LEADFLOW_MODEL=str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert "nope.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_count_what_the_worker_did(flow: Flow, rules_file: Path) -> None:
    flow.start_worker(LEADFLOW_RULES=str(rules_file))
    flow.produce(_qualifying_lead("L-m1"))
    flow.produce([(b"L-m2", b"nope")])
    flow.read(flow.settings.topic_decisions, 3)
    flow.read(flow.settings.topic_dlq, 1)
    m = flow.metric
    assert m("leadflow_events_consumed_total", event_type="lead.upserted") == 1
    assert m("leadflow_events_consumed_total", event_type="lead.activity") == 2
    assert m("leadflow_opportunities_created_total", stage="Needs Analysis") == 1  # the stage its rule opens
    assert m("leadflow_decisions_total", status="Qualified", action="converted") == 1
    assert m("leadflow_decisions_total", status="Contacted", action="status_changed") == 1
    assert m("leadflow_dead_letters_total", reason="not_json") == 1
    assert m("leadflow_worker_up") == 1
    assert m("leadflow_event_latency_seconds_count") == 3
    assert 'leadflow_ruleset_info{version="it-1+' in flow.metrics()

    # and the page passes Prometheus' own linter: base units, _total on counters, help on everything
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: 'make system-deps' installs Debian's prometheus package"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=flow.metrics(), capture_output=True, text=True, check=False
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_leadflow_produce_sends_json_lines_keyed_by_lead(flow: Flow, rules_file: Path, tmp_path: Path) -> None:
    flow.start_worker(LEADFLOW_RULES=str(rules_file))
    lines = tmp_path / "events.jsonl"
    events = _qualifying_lead("L-cli")
    lines.write_bytes(b"\n".join([orjson.dumps(events[0]), b"{broken", b"", *map(orjson.dumps, events[1:])]) + b"\n")
    s = flow.settings
    cli = [sys.executable, "-m", "worker", "produce", str(lines), "--broker", s.broker_url, "--topic", s.topic_leads]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "sent 4 events" in done.stdout  # the blank line is skipped, the broken one is sent for the DLQ
    decisions = [o.json for o in flow.read(s.topic_decisions, 3)]
    assert [d["event_id"] for d in decisions] == ["L-cli-e1", "L-cli-e2", "L-cli-e3"]
    (dead,) = flow.read(s.topic_dlq, 1)
    assert dead.value == b"{broken"

    missing = subprocess.run([*cli[:4], str(tmp_path / "nope.jsonl")], capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    assert "nope.jsonl" in missing.stderr
    assert "Traceback" not in missing.stderr
