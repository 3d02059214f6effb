"""The compiled rules' cost on one core: Ruleset.evaluate over realistic facts (no broker, no model).

Rulesets:
  default    worker/rules/default.yaml
  generated  N rules (default 500: 400 scoring, 100 qualification) of mixed operators, windows, decay and nested
             conditions, their values drawn from the facts themselves so that a realistic share of them match

Facts are those the core builds for every event of the synthetic sample (worker.scoring.training.generate), with
what each event changed, and a fixed score. Each evaluation copies the facts first (evaluate writes ``points`` and
derived facts into them), as bench/bench_core.py's "rules" stage does.

    python bench/bench_rules.py [--leads 2000] [--repeat 3] [--rules 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.lead.events import KNOWN_ACTIVITY_TYPES  # noqa: E402
from worker.lead.parse import parse_event  # noqa: E402
from worker.lead.state import apply_event, build_facts, event_digest, new_state  # noqa: E402
from worker.rules import Ruleset, default_ruleset_path, load_ruleset, parse_ruleset  # noqa: E402
from worker.scoring.training import generate  # noqa: E402

TEXT_FIELDS = ("title", "industry", "lead_source", "country", "city", "company", "email", "website", "rating")


def build_facts_list(leads: int) -> list[dict[str, object]]:
    """The facts of every event of the synthetic sample, as the core builds them before the rules run."""
    data = generate(leads, seed=11, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    states: dict[str, dict[str, Any]] = {}
    out = []
    for raw in data.events:
        event = parse_event(raw["lead_id"].encode(), orjson.dumps(raw))
        now = event.occurred_at.timestamp()
        state = states.setdefault(event.lead_id, new_state(event.lead_id, now))
        changed = apply_event(state, event, event_digest(event.event_id), now, 64)
        facts = build_facts(state, now, event, changed)
        facts["score"] = 0.2
        out.append(facts)
    return out


def _common(facts_list: list[dict[str, object]], field: str, n: int) -> list[Any]:
    seen = Counter(f.get(field) for f in facts_list if isinstance(f.get(field), str))
    return [value for value, _ in seen.most_common(n)] or ["x"]


def generated_ruleset(facts_list: list[dict[str, object]], size: int, seed: int = 7) -> str:
    """A ruleset of ``size`` rules of mixed operators (4/5 scoring, 1/5 qualification) as YAML text."""
    rng = random.Random(seed)
    values = {field: _common(facts_list, field, 20) for field in TEXT_FIELDS}
    activities = list(KNOWN_ACTIVITY_TYPES)

    def text_leaf() -> dict[str, Any]:
        field = rng.choice(TEXT_FIELDS)
        pool = values[field]
        some = rng.sample(pool, min(len(pool), rng.randint(1, 4)))
        word = str(rng.choice(pool))[:4]
        op, value = rng.choice(
            [
                ("eq", some[0]),
                ("in", some),
                ("in_ci", some),
                ("ne", some[0]),
                ("contains_ci", [word.lower()]),
                ("starts_with", word),
                ("ends_with_ci", word[-3:]),
                ("matches", f"(?i)^{word[:2]}.*(a|e)"),
            ]
        )
        return {"field": field, "op": op, "value": value}

    def number_leaf() -> dict[str, Any]:
        kind = rng.choice(activities)
        return rng.choice(
            [
                {"field": "number_of_employees", "op": "gte", "value": rng.choice([50, 200, 1000, 5000])},
                {"field": "annual_revenue", "op": "between", "value": [1e6, rng.choice([1e7, 1e8, 1e9])]},
                {"field": f"activity.{kind}.count", "op": "gte", "value": rng.randint(1, 3)},
                {"field": f"activity.{kind}.count_in_days({rng.choice([7, 14, 30])})", "op": "gte", "value": 1},
                {"field": f"activity.{kind}.last_at", "op": "within_days", "value": rng.choice([7, 30])},
                {"field": "days_since_last_activity", "op": "lt", "value": rng.choice([2, 14])},
            ]
        )

    def special_leaf() -> dict[str, Any]:
        return rng.choice(
            [
                {"field": "email", "op": "is_free_email"},
                {"field": "email", "op": "is_not_free_email"},
                {"field": "email", "op": "domain_in", "value": ["gmail.com", "acme.com", "example.org"]},
                {"field": "website", "op": "domain_in", "value": ["acme.com", "globex.com"]},
                {"field": rng.choice(["title", "email", "activity.page_view.count"]), "op": "changed"},
                {"field": rng.choice(["phone", "company"]), "op": rng.choice(["is_null", "is_not_null"])},
            ]
        )

    def leaf() -> dict[str, Any]:
        return rng.choice([text_leaf, text_leaf, number_leaf, number_leaf, special_leaf])()

    def condition(depth: int = 0) -> dict[str, Any]:
        if depth >= 2 or rng.random() < 0.6:
            return leaf()
        group = rng.choice(["all", "any", "not"])
        if group == "not":
            return {"not": condition(depth + 1)}
        return {group: [condition(depth + 1) for _ in range(rng.randint(2, 4))]}

    scoring: list[dict[str, Any]] = []
    for i in range(size - size // 5):
        rule: dict[str, Any] = {"id": f"s{i}", "points": rng.choice([-10, -5, 2, 5, 10, 15, 20])}
        if rng.random() < 0.1:
            rule.update(per=f"activity.{rng.choice(activities)}.count", max=20)
        else:
            rule["when"] = condition()
        scoring.append(rule)
    qualification = [
        {
            "id": f"q{i}",
            "when": {"all": [{"field": "points", "op": "gte", "value": rng.randint(40, 200)}, condition(1)]},
            "status": rng.choice(["Contacted", "Unqualified"]),
        }
        for i in range(size // 5)
    ]
    doc = {
        "version": "bench-1",
        "decay": {"percent": 50, "days": 30},
        "scoring": scoring,
        "qualification": qualification,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def best_rate(ruleset: Ruleset, facts_list: list[dict[str, object]], repeat: int) -> float:
    """Evaluations per second of the fastest of ``repeat`` runs (the least disturbed by the shared machine)."""
    evaluate = ruleset.evaluate
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        for facts in facts_list:
            evaluate(dict(facts))
        best = min(best, time.perf_counter() - started)
    return len(facts_list) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rules", type=int, default=500)
    args = parser.parse_args()

    facts_list = build_facts_list(args.leads)
    rulesets = {
        "default": load_ruleset(default_ruleset_path()),
        f"generated-{args.rules}": parse_ruleset(generated_ruleset(facts_list, args.rules), "generated.yaml"),
    }
    print(
        f"{len(facts_list):,} facts of {args.leads:,} leads; best of {args.repeat} runs; one core"
        f" (Python {sys.version.split()[0]})"
    )
    gc.freeze()  # the prepared facts are long-lived inputs a worker would not hold: keep them out of GC scans
    for name, ruleset in rulesets.items():
        rules = len(ruleset.scoring_rules) + len(ruleset.qualification_rules)
        matched = sum(len(ruleset.evaluate(dict(f)).matched_rules) for f in facts_list) / len(facts_list)
        rate = best_rate(ruleset, facts_list, args.repeat)
        print(
            f"  {name:<14} {rules:>4} rules {rate:>12,.0f} evaluations/s   {1e6 / rate:7.2f} µs/evaluation"
            f"   {matched:5.1f} rules matched on average"
        )


if __name__ == "__main__":
    main()
