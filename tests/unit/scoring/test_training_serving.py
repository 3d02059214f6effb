"""Training and serving compute the model's inputs the same way: the facts that training replays from an activity
history give, event by event, exactly the score the worker's core gives from its per-lead state."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import orjson

from worker.batch import Record, process_batch
from worker.core import Engine
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import default_model_path, load_model
from worker.scoring.training import generate
from worker.scoring.training.train import replay


def test_every_event_scores_the_same_in_training_and_in_the_worker() -> None:
    data = generate(150, seed=21, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    model = load_model(default_model_path())
    engagement = [f.path for f in model.features if f.path.startswith("activity.")]
    assert engagement  # the model reads engagement, so this compares more than the profile

    # training: the facts after each of a lead's events, from its history
    positions: Counter[str] = Counter(e["lead_id"] for e in data.events)
    trained = replay(data.events, at={lead: range(n) for lead, n in positions.items()})

    # serving: the worker's core, batch by batch, state carried in its store between batches
    engine = Engine(load_ruleset(default_ruleset_path()), model)
    records = [Record(e["lead_id"].encode(), orjson.dumps(e), "leads", 0, i) for i, e in enumerate(data.events)]
    store: dict[str, bytes] = {}
    served: list[dict[str, object]] = []
    for start in range(0, len(records), 97):  # batches that split leads' histories at odd places
        result = process_batch(engine, records[start : start + 97], store.get, 0.0)
        store.update(result.states)
        served += [orjson.loads(value) for _, value in result.decisions]
    assert len(served) == len(data.events)

    seen: Counter[str] = Counter()
    engaged = 0
    for event, decision in zip(data.events, served, strict=True):
        lead = event["lead_id"]
        facts = trained[lead][seen[lead]]
        seen[lead] += 1
        assert decision["event_id"] == event["event_id"]
        assert decision["score"] == model.score(facts).probability, (lead, event["event_id"])
        engaged += any(facts.get(path) for path in engagement)
    assert engaged > len(data.events) // 2  # most comparisons include engagement counts
