"""``leadflow export-training`` reading the real topics on the embedded broker: the same CSV and mapping as from
the same records in files, read without a consumer group.

No worker is started: the records are those the worker's pure core gave for the scenario of
tests/export_scenario.py (the unit tests check the loop itself), produced on the four topics, keyed as the worker
and the CRM key them, over several partitions.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from tests.export_scenario import CUTOFF, build_loop
from tests.integration.conftest import Flow
from worker.cli import main
from worker.stream.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_the_topics_give_the_export_of_the_same_records_in_files(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = build_loop(tmp_path, n=120, seed=4)
    settings = flow.settings
    topics = [settings.topic_leads, settings.topic_decisions, settings.topic_opportunities, settings.topic_feedback]
    ensure_topics(settings, topics)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
    try:
        for event in loop.events:
            producer.send(settings.topic_leads, key=event["lead_id"].encode(), value=orjson.dumps(event))
        for value in loop.decisions:
            producer.send(settings.topic_decisions, key=orjson.loads(value)["lead_id"].encode(), value=value)
        for value in loop.opportunities:
            producer.send(settings.topic_opportunities, key=orjson.loads(value)["opportunity_id"].encode(), value=value)
        for value in loop.feedback:  # the CRM keys its feedback by opportunity: one opportunity's in order
            producer.send(settings.topic_feedback, key=orjson.loads(value)["opportunity_id"].encode(), value=value)
        producer.flush()
    finally:
        producer.close()
    files = loop.write_files(tmp_path)
    common = ["export-training", "--model", str(loop.model_path), "--rules", str(loop.rules)]
    common += ["--cutoff", CUTOFF.isoformat()]
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    groups_before = {group["group_id"] for group in admin.list_groups()}

    for name, value in flow.env().items():
        monkeypatch.setenv(name, value)
    assert main([*common, "--out", str(tmp_path / "from-topics"), "--broker", settings.broker_url]) == 0
    from_topics = capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "from-files"), *(f"--{n}={p}" for n, p in files.items())]) == 0
    from_files = capsys.readouterr().out

    csv_topics = (tmp_path / "from-topics" / "training.csv").read_bytes()
    assert csv_topics == (tmp_path / "from-files" / "training.csv").read_bytes()
    assert csv_topics.count(b"\n") == 1 + len(loop.labels)  # the header and one row per lead with an outcome
    mapping = (tmp_path / "from-topics" / "mapping.yaml").read_text(encoding="utf-8")
    assert mapping.replace("from-topics", "from-files") == (tmp_path / "from-files" / "mapping.yaml").read_text(
        encoding="utf-8"
    )
    rows = len(loop.labels)
    assert f"live scores reproduced from the exported facts: {rows} of {rows}" in from_topics
    assert from_topics.replace("from-topics", "from-files") == from_files
    try:
        assert {group["group_id"] for group in admin.list_groups()} == groups_before  # no group joined
    finally:
        admin.close()
