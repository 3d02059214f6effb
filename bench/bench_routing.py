"""Routing's cost per routed opportunity on one core, in the pure core (no broker, no Faust).

Stages:
  route      Routing.route per lead: account matching against 10,000 known accounts (a quarter of the leads'
             companies are among them), 20 routing rules, 40 territories and the default, over the facts and
             profile of each lead of the synthetic sample
  assign-5   assign() per request, a pool of 5 members with weights, daily and rolling-window caps and working
             hours in three time zones, requests one minute apart over a week (so some members are off or capped)
  assign-50  the same with 50 members
  batch      route_batch per request as the pool's worker runs it, 500 requests a batch: JSON requests in, JSON
             opportunities, routing decisions and SLA notices out, pool states serialised at the end of each
             batch, answered requests remembered (pool of 5, the same caps and hours)

    python bench/bench_routing.py [--leads 2000] [--requests 20000] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_core import best_rate  # noqa: E402  # the same timing as the core's benchmark (bench/ is on the path)

from worker.batch import Record, process_batch  # noqa: E402
from worker.core import Engine  # noqa: E402
from worker.lead.parse import parse_event  # noqa: E402
from worker.lead.state import apply_event, build_facts, event_digest, new_state, profile_of  # noqa: E402
from worker.routing import AccountIndex, Pool, Routing, assign  # noqa: E402
from worker.routing.flow import route_batch  # noqa: E402
from worker.rules import default_ruleset_path, parse_ruleset  # noqa: E402
from worker.scoring import default_model_path, load_model  # noqa: E402
from worker.scoring.training import generate  # noqa: E402

START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday
ZONES = ("America/New_York", "Europe/London", "Asia/Singapore")
COUNTRIES = ("United States", "Germany", "United Kingdom", "India", "Canada", "France", "Brazil", "Australia")
INDUSTRIES = ("Technology", "Finance", "Healthcare", "Retail", "Manufacturing", "Education", "Telecommunications")


def members(n: int) -> list[dict[str, Any]]:
    """``n`` members: weights 100-300, a third per time zone, every member capped per day and per 4 hours."""
    return [
        {
            "id": f"rep-{i:03d}",
            "weight": 100 * (1 + i % 3),
            "timezone": ZONES[i % len(ZONES)],
            "caps": {"per_day": 12 + i % 5, "per_window": {"count": 4, "hours": 4}},
        }
        for i in range(n)
    ]


def routing_section(pool_members: dict[str, int]) -> dict[str, Any]:
    """20 rules, 40 territories, one pool per entry of ``pool_members`` (name: size), account matching on."""
    names = list(pool_members)
    rules = [
        {
            "id": f"rule-{i:02d}",
            "when": {
                "all": [
                    {"field": "industry", "op": "eq", "value": INDUSTRIES[i % len(INDUSTRIES)]},
                    {"field": "number_of_employees", "op": "gte", "value": 5000 + 1000 * i},
                ]
            },
            "to": {"pool": names[i % len(names)]},
        }
        for i in range(20)
    ]
    territories = [
        {
            "id": f"territory-{i:02d}",
            "country": COUNTRIES[i % len(COUNTRIES)],
            "industry": [INDUSTRIES[i % len(INDUSTRIES)], INDUSTRIES[(i + 3) % len(INDUSTRIES)]],
            "employees": {"min": 50 * (i // 8), "max": 50 * (i // 8) + 400},
            "to": {"pool": names[i % len(names)]},
        }
        for i in range(40)
    ]
    pools = [
        {
            "name": name,
            "strategy": "weighted_round_robin",
            "working_hours": {"mon-fri": "08:00-18:00"},
            "overflow": {"queue": "Overflow"},
            "sla": {"accept_within_minutes": 30},
            "members": members(size),
        }
        for name, size in pool_members.items()
    ]
    return {"default": {"pool": names[0]}, "rules": rules, "territories": territories, "pools": pools}


def routed_ruleset_text(pool_members: dict[str, int]) -> str:
    """The default ruleset, its rules' own queue removed (so routing decides), with a routing section."""
    text = default_ruleset_path().read_text(encoding="utf-8")
    kept = "".join(line for line in text.splitlines(keepends=True) if "queue: Inbound AEs" not in line)
    return kept + yaml.safe_dump({"routing": routing_section(pool_members)}, sort_keys=False)


def lead_inputs(leads: int) -> list[tuple[dict[str, object], dict[str, Any]]]:
    """Each lead's facts and profile after its last event, as the core passes them to Routing.route."""
    data = generate(leads, seed=11, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    states: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, object]] = {}
    for raw in data.events:
        event = parse_event(raw["lead_id"].encode(), orjson.dumps(raw))
        now = event.occurred_at.timestamp()
        state = states.setdefault(event.lead_id, new_state(event.lead_id, now))
        apply_event(state, event, event_digest(event.event_id), now, 64)
        facts = build_facts(state, now, event)
        facts["score"] = 0.2
        facts["points"] = 60
        last[event.lead_id] = facts
    return [(last[lead], profile_of(states[lead])) for lead in last]


def accounts(inputs: list[tuple[dict[str, object], dict[str, Any]]], n: int) -> AccountIndex:
    """``n`` known accounts: a quarter of the leads' companies (by website), the rest made up."""
    index = AccountIndex()
    rng = random.Random(5)
    real = [p for _, p in inputs if isinstance(p.get("website"), str)]
    for i, profile in enumerate(rng.sample(real, len(real) // 4)):
        index.put(
            f"001-R{i:05d}", {"name": profile.get("company"), "owner_id": f"005-{i}", "website": profile["website"]}
        )
    for i in range(n - len(index)):
        index.put(
            f"001-F{i:05d}", {"name": f"Made Up {i} Ltd", "owner_id": f"005-F{i}", "domains": [f"made-{i}.example"]}
        )
    return index


def request_times(n: int) -> list[float]:
    """One request a minute from Monday 00:00 UTC: nights, weekends and busy hours all come up."""
    start = START.timestamp()
    return [start + 60.0 * i for i in range(n)]


def requests(engine: Engine, leads: int, n: int) -> list[bytes]:
    """``n`` routing requests as the core writes them (the synthetic sample's own, with new ids and times)."""
    data = generate(leads, seed=11, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    records = [Record(e["lead_id"].encode(), orjson.dumps(e), "leads", 0, i) for i, e in enumerate(data.events)]
    store: dict[str, bytes] = {}
    made: list[dict[str, Any]] = []
    for start in range(0, len(records), 500):
        result = process_batch(engine, records[start : start + 500], store.get, 1.0)
        store.update(result.states)
        made.extend(orjson.loads(v) for _, v in result.route_requests)
    if not made:
        msg = "the routed ruleset produced no pool request: nothing to benchmark"
        raise SystemExit(msg)
    out = []
    for i, at in enumerate(request_times(n)):
        message = dict(made[i % len(made)])
        message["request_id"] = f"bench-{i}#1"
        message["requested_at"] = at
        out.append(orjson.dumps(message))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=2000, help="leads of the synthetic sample for 'route'")
    parser.add_argument("--requests", type=int, default=20_000, help="requests for 'assign' and 'batch'")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 leads, 2,000 requests, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.leads, args.requests, args.repeat = 300, 2_000, 1

    ruleset = parse_ruleset(routed_ruleset_text({"ae-5": 5, "ae-50": 50}))
    routing: Routing | None = ruleset.routing
    assert routing is not None
    inputs = lead_inputs(args.leads)
    index = accounts(inputs, args.accounts)
    engine = Engine(ruleset, load_model(default_model_path()), accounts=index)
    times = request_times(args.requests)
    raw = requests(engine, args.leads, args.requests)
    # every request to the pool of 5, so that 'batch' measures the same pool as 'assign-5'
    to_five = [value.replace(b'"pool":"ae-50"', b'"pool":"ae-5"') for value in raw]
    batch_records = [Record(b"ae-5", value, "route-requests", 0, i) for i, value in enumerate(to_five)]
    via = {route.via for route in (routing.route(f, p, index) for f, p in inputs)}

    def run_route() -> None:
        for facts, profile in inputs:
            routing.route(facts, profile, index)

    def run_assign(pool: Pool) -> Callable[[], None]:
        def run() -> None:
            state = None
            for i, now in enumerate(times):
                state, _ = assign(pool, state, f"r{i}", now)

        return run

    def run_batch() -> None:
        pools: dict[str, bytes] = {}
        done: dict[str, tuple[str, bytes]] = {}
        for start in range(0, len(batch_records), 500):
            out = route_batch(
                routing,
                batch_records[start : start + 500],
                pools.get,
                lambda request_id, _pool: (done.get(request_id) or (None, None))[1],
                1.0,
                ruleset.version,
                routing.default,
            )
            pools.update(out.pool_states)
            done.update(out.done)

    print(
        f"{len(inputs):,} leads, {args.requests:,} requests, {len(index):,} accounts; best of {args.repeat} runs; "
        f"one core (Python {sys.version.split()[0]})"
    )
    print(f"ruleset {ruleset.version}: {len(routing.rules)} routing rules, {len(routing.territories)} territories; "
          f"leads routed via {', '.join(sorted(via))}")  # fmt: skip
    gc.freeze()
    for name, n, unit, fn in [
        ("route", len(inputs), "lead", run_route),
        ("assign-5", len(times), "request", run_assign(routing.pools["ae-5"])),
        ("assign-50", len(times), "request", run_assign(routing.pools["ae-50"])),
        ("batch", len(batch_records), "request", run_batch),
    ]:
        rate = best_rate(n, fn, args.repeat)
        print(f"  {name:<10} {rate:>12,.0f} {unit}s/s   {1e6 / rate:8.2f} µs/{unit}")


if __name__ == "__main__":
    main()
