"""``leadflow forecast`` on the real broker: the topics give the figures computed by hand, as the files do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from tests.integration.conftest import Flow, consumer_groups
from tests.unit.tools.forecast.conftest import DECISIONS, FEEDBACK, LEADS, OPPORTUNITIES, write_files
from worker.cli import main
from worker.stream.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_the_topics_give_the_figures_computed_by_hand_and_no_group_joins(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = flow.settings
    ensure_topics(settings)  # several partitions each: the CRM's feedback lands on any of them
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
    for topic, values, key in (
        (settings.topic_opportunities, OPPORTUNITIES, "opportunity_id"),
        (settings.topic_feedback, FEEDBACK, "opportunity_id"),  # one opportunity's feedback stays in order
        (settings.topic_decisions, DECISIONS, "lead_id"),
        (settings.topic_leads, LEADS, "lead_id"),
    ):
        for value in values:
            producer.send(topic, key=value[key].encode(), value=orjson.dumps(value))
    producer.flush()
    producer.close()
    for name, value in flow.env().items():
        monkeypatch.setenv(name, value)
    groups_before = consumer_groups(flow.settings)

    html = tmp_path / "forecast.html"
    assert main(["forecast", "--json", "--html", str(html)]) == 0
    report: dict[str, Any] = orjson.loads(capsys.readouterr().out)

    assert report["sources"]["feedback"] == f"topic {settings.topic_feedback!r}"
    assert report["forecast"]["forecast"] == {
        "Closed": 15_000,
        "Forecast": 35_000,
        "MostLikely": 35_000,
        "BestCase": 43_000,
        "Pipeline": 47_000,
    }
    assert report["pipeline"]["won"] == {"count": 1, "amount": 15_000}
    assert report["feedback"] == {"replayed": 1, "accepted": 1, "dead_letters": {"unknown_opportunity": 1}}
    assert (report["funnel"]["Web"]["leads"], report["funnel"]["all"]["leads"]) == (4, 7)
    assert report["calibration"]["ece"] == 0.275
    assert html.read_text(encoding="utf-8").count("data:image/png;base64,") == 5

    files = write_files(tmp_path)
    assert main(["forecast", "--json", *files]) == 0
    from_files = orjson.loads(capsys.readouterr().out)
    assert {k: v for k, v in report.items() if k != "sources"} == {
        k: v for k, v in from_files.items() if k != "sources"
    }

    assert consumer_groups(flow.settings) == groups_before  # read without a consumer group, nothing committed
