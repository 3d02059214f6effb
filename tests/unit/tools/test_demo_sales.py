"""The demo's reps: what they send on the feedback topic is valid feedback, the same for the same opportunities."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from worker.opportunities import parse_feedback
from worker.settings import Settings
from worker.tools._demo_sales import work_opportunities


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        pass


def _opportunities(n: int) -> list[dict[str, Any]]:
    return [
        {"event_type": "opportunity.created", "opportunity_id": f"opp-{i}", "amount": 10_000.0, "score": (i % 10) / 10}
        for i in range(n)
    ]


def test_the_reps_send_valid_feedback_keyed_by_opportunity_and_the_same_each_time() -> None:
    settings = Settings()
    producer = _Producer()
    seen: set[str] = set()
    done = work_opportunities(producer, settings, _opportunities(200), seen)
    again = work_opportunities(producer, settings, _opportunities(200), seen)  # seen already: nothing more
    assert again == Counter()

    events = [parse_feedback(value) for _, _, value in producer.sent]  # raises on anything the worker would refuse
    assert {topic for topic, _, _ in producer.sent} == {settings.topic_feedback}
    assert all(key == event.opportunity_id.encode() for (_, key, _), event in zip(producer.sent, events, strict=True))
    closings = Counter(event.event_id for event in events if event.event_type == "opportunity.closed")
    assert sum(closings.values()) == done["won"] + done["lost"] + done["resent"]
    assert sum(n - 1 for n in closings.values()) == done["resent"]  # a resent closing repeats its event id
    assert min(done["moved"], done["won"], done["lost"]) > 0
    won = {e.opportunity_id: e.won for e in events if e.event_type == "opportunity.closed"}
    high = [w for opp, w in won.items() if int(opp.split("-")[1]) % 10 >= 5]
    low = [w for opp, w in won.items() if int(opp.split("-")[1]) % 10 < 5]
    assert sum(high) / len(high) > sum(low) / len(low)  # won more often the higher the lead's score
    assert sum(1 for e in events if e.event_type == "opportunity.updated" and e.forecast_category == "Forecast")

    replay = _Producer()
    assert work_opportunities(replay, settings, _opportunities(200), set()) == done
    assert [(k, orjson.loads(v)["event_id"]) for _, k, v in replay.sent] == [
        (k, orjson.loads(v)["event_id"]) for _, k, v in producer.sent
    ]
