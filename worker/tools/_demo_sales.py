"""The demo's sales reps after conversion: they move opportunities through stages and close them, on the feedback
topic, so that the demo's pipeline and forecast have something in every category.

Each new opportunity gets a stable draw (seeded by its id): some are left as they are, some move on (Value
Proposition in Pipeline, Proposal/Price Quote as Best Case, Negotiation/Review as Commit), the rest close, won
more often the higher the lead's score; a few closings are sent twice, as a CRM retrying would.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from worker.settings import Settings

__all__ = ["work_opportunities"]

_MOVES = (
    ("Value Proposition", None),
    ("Proposal/Price Quote", "BestCase"),
    ("Negotiation/Review", "Forecast"),  # shown as Commit
)


def _event(opportunity_id: str, kind: str, number: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": f"opportunity.{kind}",
        "opportunity_id": opportunity_id,
        "event_id": f"demo-{kind}-{number}-{opportunity_id}",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        **fields,
    }


def work_opportunities(
    producer: Any, settings: Settings, opportunities: Iterable[dict[str, Any]], seen: set[str]
) -> Counter[str]:
    """Play the reps on the opportunities not seen before; returns what they did (moved, won, lost, resent)."""
    done: Counter[str] = Counter()
    today = dt.datetime.now(dt.UTC).date()
    for opportunity in opportunities:
        opportunity_id = opportunity["opportunity_id"]
        if opportunity_id in seen or opportunity.get("event_type", "opportunity.created") != "opportunity.created":
            continue
        seen.add(opportunity_id)
        draw = random.Random(opportunity_id)  # noqa: S311  # a stable draw, not a secret
        fate, amount = draw.random(), opportunity.get("amount") or 0.0
        events = []
        if fate < 0.2:
            continue  # nobody touched it yet
        stage, category = draw.choice(_MOVES)
        close_date = today + dt.timedelta(days=draw.randint(10, 100))
        move = {
            "stage_name": stage,
            "close_date": close_date.isoformat(),
            "amount": round(amount * draw.uniform(0.8, 1.5)),
        }
        events.append(
            _event(opportunity_id, "updated", 1, **move, **({"forecast_category": category} if category else {}))
        )
        if fate < 0.6:
            done["moved"] += 1
        else:
            won = draw.random() < 0.1 + 0.8 * float(opportunity.get("score") or 0.0)
            events.append(_event(opportunity_id, "closed", 2, won=won))
            done["won" if won else "lost"] += 1
            if draw.random() < 0.05:
                events.append(events[-1])  # a CRM retry: the worker and the report count it once
                done["resent"] += 1
        for event in events:
            producer.send(settings.topic_feedback, key=opportunity_id.encode(), value=orjson.dumps(event))
    producer.flush()
    return done
