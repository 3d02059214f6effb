"""``leadflow backtest --topic`` against the real broker: the same report as from a file, and no group offsets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.integration.conftest import RULES, Flow, consumer_groups, write_rules
from worker.cli import main
from worker.scoring.training import generate
from worker.stream.topics import ensure_topics

pytestmark = pytest.mark.integration


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what names the source: where a bad record was is a line in one, an offset in the other."""
    out = {k: v for k, v in report.items() if k != "source"}
    for summary in out["rulesets"]:
        summary["bad_events"]["examples"] = [(b["reason"], b["error"]) for b in summary["bad_events"]["examples"]]
    return out


def test_a_topic_gives_the_report_of_the_same_events_as_a_file_and_commits_no_offsets(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = flow.settings
    ensure_topics(settings, [settings.topic_leads])  # 4 partitions: one lead's events stay in order on one
    events = generate(80, seed=5, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=3).events
    records: list[tuple[bytes | None, bytes | None]] = [(e["lead_id"].encode(), orjson.dumps(e)) for e in events]
    records.insert(len(records) // 2, (b"L-bad", b"{not json"))
    flow.produce(records)
    (tmp_path / "events.jsonl").write_bytes(b"".join(value + b"\n" for _, value in records if value is not None))
    old = write_rules(tmp_path, RULES, "old.yaml")
    new = write_rules(
        tmp_path,
        RULES.replace("{field: points, op: gte, value: 50}", "{field: points, op: gte, value: 15}"),
        "new.yaml",
    )
    groups_before = consumer_groups(flow.settings)

    common = ["backtest", "--rules", str(new), "--against", str(old)]
    from_topic, from_file = tmp_path / "topic.json", tmp_path / "file.json"
    args = [*common, "--topic", settings.topic_leads, "--broker", settings.broker_url, "--json", str(from_topic)]
    assert main(args) == 0
    assert main([*common, "--events", str(tmp_path / "events.jsonl"), "--json", str(from_file)]) == 0
    printed = capsys.readouterr().out

    topic_report, file_report = orjson.loads(from_topic.read_bytes()), orjson.loads(from_file.read_bytes())
    assert topic_report["source"]["records"] == len(records)
    assert topic_report["rulesets"][0]["events"]["valid"] == len(events)
    assert topic_report["rulesets"][0]["bad_events"]["by_reason"] == {"not_json": 1}
    assert topic_report["changed"]["total"] > 0, "the lower threshold must change some leads"
    assert _comparable(topic_report) == _comparable(file_report)
    assert f"topic {settings.topic_leads!r}" in printed

    assert consumer_groups(flow.settings) == groups_before  # the backtest joined no group and committed nothing
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=f"probe-{flow.suffix}")
    tp = TopicPartition(settings.topic_leads, 0)
    probe.assign([tp])
    probe.commit({tp: OffsetAndMetadata(1, "", -1)})
    probe.close()
    assert consumer_groups(flow.settings) == groups_before | {
        f"probe-{flow.suffix}"
    }  # ...which this check would have seen


def test_an_unknown_topic_is_an_error_naming_it_and_the_topics_there(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_topics(flow.settings, [flow.settings.topic_leads])
    rules = write_rules(tmp_path, RULES)
    missing = f"no-such-topic-{flow.suffix}"
    assert main(["backtest", "--rules", str(rules), "--topic", missing, "--broker", flow.settings.broker_url]) == 2
    err = capsys.readouterr().err
    assert f"topic {missing!r} does not exist on {flow.settings.broker_url!r}" in err
    assert repr(flow.settings.topic_leads) in err
