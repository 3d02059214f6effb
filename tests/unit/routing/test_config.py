"""The routing: section: a full example compiles, and each mistake is reported with its line, id and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.routing.helpers import only, problems
from worker.exceptions import RulesetError
from worker.routing import Caps, Sla, Target
from worker.routing._limits import MAX_MEMBERS, MAX_POOLS
from worker.rules import default_ruleset_path, load_ruleset, parse_ruleset

FULL = """\
version: "1"
routing:
  default: {queue: Inbound}
  accounts: {match: true}
  rules:
    - id: strategic
      when: {field: number_of_employees, op: gte, value: 5000}
      to: {user: 005-ENT}
    - id: known-account
      when: {field: account.matched, op: eq, value: true}
      to: {queue: Account-Team}
  territories:
    - id: dach
      country: [Germany, Austria, Switzerland]
      employees: {min: 0, max: 499}
      to: {pool: dach}
  pools:
    - name: emea
      strategy: weighted_round_robin
      timezone: Europe/Berlin
      working_hours: {mon-fri: "09:00-17:00", sat: "10:00-12:00"}
      caps: {per_day: 20, per_window: {count: 5, hours: 1}}
      overflow: {queue: EMEA-Overflow}
      sla: {accept_within_minutes: 30, then: next_member}
      members:
        - {id: "005A", weight: 200}
        - {id: "005B", weight: 100, active: false}
        - id: "005C"
          weight: 100
          timezone: America/New_York
          working_hours: {mon: "08:00-12:00"}
          caps: {per_day: 3}
          out_of_office: [{from: "2026-12-20T00:00:00+01:00", to: "2027-01-04T00:00:00+01:00"}]
    - name: dach
      strategy: round_robin
      overflow: {pool: emea}
      sla: {accept_within_minutes: 0.05, then: {escalate: {user: MGR-1}}}
      members: [{id: D1}, {id: D2}]
"""


def test_a_full_routing_section_compiles_to_what_it_says(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(FULL, encoding="utf-8")
    routing = load_ruleset(path).routing
    assert routing is not None
    assert routing.default == Target("queue", "Inbound")
    assert routing.match_accounts is True
    assert [r.id for r in routing.rules] == ["strategic", "known-account"]
    assert routing.rules[0].target == Target("user", "005-ENT")
    (dach,) = routing.territories
    assert dach.country == frozenset({"germany", "austria", "switzerland"})
    assert (dach.employees_min, dach.employees_max, dach.target) == (0, 499, Target("pool", "dach"))
    emea, rr = routing.pools["emea"], routing.pools["dach"]
    assert [(m.id, m.weight, m.active) for m in emea.members] == [
        ("005A", 200, True),
        ("005B", 100, False),
        ("005C", 100, True),
    ]
    a, _, c = emea.members
    assert a.timezone == "Europe/Berlin"  # the pool's default
    assert a.working_hours is not None
    assert a.working_hours[0] == ((540, 1020),)
    assert a.working_hours[5] == ((600, 720),)
    assert a.working_hours[6] == ()
    assert a.caps == Caps(per_day=20, window_count=5, window_seconds=3600.0)
    assert c.timezone == "America/New_York"
    assert c.caps == Caps(per_day=3, window_count=5, window_seconds=3600.0)  # own per_day over the pool's window
    assert c.working_hours is not None
    assert c.working_hours[0] == ((480, 720),)
    assert c.working_hours[1] == ()
    assert c.out_of_office == ((1797721200.0, 1799017200.0),)
    assert emea.overflow == Target("queue", "EMEA-Overflow")
    assert emea.sla == Sla(1800.0, None)
    assert rr.sla == Sla(3.0, Target("user", "MGR-1"))
    assert [m.weight for m in rr.members] == [1, 1]
    assert rr.overflow == Target("pool", "emea")


def test_a_pool_without_overflow_overflows_to_the_default() -> None:
    ruleset = parse_ruleset(
        'version: "1"\nrouting:\n  default: {user: U9}\n'
        "  pools: [{name: p, members: [{id: A}]}]\n  accounts: {match: false}\n"
    )
    assert ruleset.routing is not None
    assert ruleset.routing.pools["p"].overflow == Target("user", "U9")
    assert ruleset.routing.match_accounts is False


def test_the_default_ruleset_still_compiles_without_routing() -> None:
    ruleset = load_ruleset(default_ruleset_path())
    assert ruleset.routing is None
    assert ruleset.qualification_rules


def test_routing_needs_a_default() -> None:
    problem = only("routing:\n  pools: []\n")
    assert problem.line == 2
    assert "missing the required key 'default'" in problem.message


def test_an_unknown_pool_in_a_rule_is_named_with_the_near_miss() -> None:
    problem = only(
        """\
        routing:
          default: {queue: Inbound}
          rules:
            - id: big
              when: {field: number_of_employees, op: gte, value: 5000}
              to: {pool: emae}
          pools:
            - name: emea
              members: [{id: A}]
        """
    )
    assert (problem.line, problem.rule_id, problem.suggestion) == (7, "big", "emea")
    assert "unknown pool 'emae'; pools are: emea" in problem.message


def test_an_unknown_pool_in_a_territory_and_an_unknown_key_in_routing() -> None:
    problem = only(
        "routing:\n  default: {queue: Inbound}\n  territories:\n    - {id: t, country: DE, to: {pool: emae}}\n"
        "  pools: [{name: emea, members: [{id: A}]}]\n"
    )
    assert (problem.line, problem.rule_id, problem.suggestion) == (5, "t", "emea")
    problem = only("routing:\n  default: {queue: Inbound}\n  pols: []\n")
    assert (problem.line, problem.suggestion) == (4, "pools")
    assert "unknown key 'pols' in 'routing'" in problem.message


def test_unknown_pools_in_overflow_and_escalate_are_reported() -> None:
    found = problems(
        """\
        routing:
          default: {queue: Inbound}
          pools:
            - name: emea
              overflow: {pool: apac}
              sla: {accept_within_minutes: 5, then: {escalate: {pool: emae}}}
              members: [{id: A}]
        """
    )
    assert [(p.line, p.suggestion) for p in found] == [(6, None), (7, "emea")]
    assert "'overflow': unknown pool 'apac'" in found[0].message
    assert "'escalate': unknown pool 'emae'" in found[1].message


def test_duplicates_are_reported_with_the_first_line() -> None:
    found = problems(
        """\
        routing:
          default: {queue: Inbound}
          rules:
            - id: r1
              when: {field: country, op: eq, value: DE}
              to: {queue: X}
          territories:
            - {id: r1, country: FR, to: {queue: Y}}
          pools:
            - name: emea
              members:
                - {id: A}
                - {id: A}
            - name: emea
              members: [{id: B}]
        """
    )
    messages = [(p.line, p.message) for p in found]
    assert (9, "routing.territories[0].id: routing id 'r1' is used twice (first on line 5)") in messages
    assert (
        14,
        "routing.pools[0].members[1].id: member 'A' is listed twice in pool 'emea' (first on line 13)",
    ) in messages
    assert (15, "routing.pools[1].name: pool 'emea' is defined twice (first on line 11)") in messages


def test_pool_mistakes_are_all_reported_with_fixes() -> None:
    found = problems(
        """\
        routing:
          default: {queue: Inbound}
          pools:
            - name: emea
              strategy: weighted-round-robin
              timezone: Europe/Berln
              working_hours: {mon: "17:00-09:00", tues: "09:00-17:00", wed: "9-5"}
              caps: {per_day: 0}
              sla: {accept_within_minutes: 0}
              members:
                - {id: A, weight: 0}
                - {id: B, weight: 20000}
                - {id: C, timezone: america/new_york}
            - name: empty
              members: []
            - name: "bad name!"
              members: [{id: X}]
        """
    )
    by_text = {p.message.split(": ", 1)[0]: p for p in found}
    strategy = by_text["routing.pools[0].strategy"]
    assert (strategy.line, strategy.suggestion) == (6, "weighted_round_robin")
    zone = by_text["routing.pools[0].timezone"]
    assert (zone.line, zone.suggestion) == (7, "Europe/Berlin")
    assert "unknown time zone 'Europe/Berln'" in zone.message
    assert "end before they start" in by_text["routing.pools[0].working_hours.mon"].message
    assert by_text["routing.pools[0].working_hours.tues"].suggestion == "tue"
    assert "written like \"09:00-17:00\", got '9-5'" in by_text["routing.pools[0].working_hours.wed"].message
    assert "greater than or equal to 1, got 0" in by_text["routing.pools[0].caps.per_day"].message
    assert "greater than 0, got 0" in by_text["routing.pools[0].sla.accept_within_minutes"].message
    assert "greater than or equal to 1, got 0" in by_text["routing.pools[0].members[0].weight"].message
    assert "less than or equal to 10000, got 20000" in by_text["routing.pools[0].members[1].weight"].message
    assert by_text["routing.pools[0].members[2].timezone"].suggestion == "America/New_York"
    assert "pool 'empty' has no members" in by_text["routing.pools[1].members"].message
    assert "needs a pool name of letters" in by_text["routing.pools[2].name"].message
    assert all(p.path == "rules.yaml" and p.line is not None for p in found)


def test_a_target_needs_exactly_one_of_user_queue_pool() -> None:
    problem = only("routing:\n  default: {queue: Inbound, user: U1}\n")
    assert problem.line == 3
    assert "'default' needs exactly one of user, queue or pool, got user and queue" in problem.message
    problem = only("routing:\n  default: {qeue: Inbound}\n")
    assert problem.suggestion == "queue"


def test_round_robin_weights_self_overflow_and_bad_then() -> None:
    found = problems(
        """\
        routing:
          default: {queue: Inbound}
          pools:
            - name: q
              members: [{id: A, weight: 5}]
              overflow: {pool: q}
              sla: {accept_within_minutes: 5, then: {escalte: {user: M}}}
        """
    )
    assert [(p.line, p.suggestion) for p in found] == [
        (6, "weighted_round_robin"),
        (7, None),
        (8, "escalate"),
    ]
    assert "uses round_robin, where every member counts the same" in found[0].message
    assert "pool 'q' overflows to itself" in found[1].message


def test_overflow_that_goes_round_in_a_circle_is_refused() -> None:
    problem = only(
        """\
        routing:
          default: {queue: Inbound}
          pools:
            - {name: a, overflow: {pool: b}, members: [{id: A}]}
            - {name: b, overflow: {pool: a}, members: [{id: B}]}
        """
    )
    assert "goes round in a circle: a -> b -> a" in problem.message


def test_a_circle_is_reported_at_its_own_pool_when_an_earlier_pool_is_broken() -> None:
    found = problems(
        """\
        routing:
          default: {queue: Inbound}
          pools:
            - {name: x, strategy: lottery, members: [{id: X}]}
            - {name: b, overflow: {pool: c}, members: [{id: B}]}
            - {name: c, overflow: {pool: b}, members: [{id: C}]}
        """
    )
    circle = next(p for p in found if "circle" in p.message)
    assert "routing.pools[1].overflow" in circle.message
    assert circle.line == 6


def test_account_facts_are_for_routing_rules_only_and_near_misses_are_suggested() -> None:
    found = problems(
        """\
        qualification:
          - id: q
            when: {field: account.matched, op: eq, value: true}
            status: Contacted
        routing:
          default: {queue: Inbound}
          rules:
            - id: r
              when: {field: account.matchd, op: eq, value: true}
              to: {queue: X}
        """
    )
    assert [(p.line, p.rule_id, p.suggestion) for p in found] == [(4, "q", None), (10, "r", "account.matched")]
    assert "only known to routing rules" in found[0].message


def test_territory_and_out_of_office_mistakes() -> None:
    found = problems(
        """\
        routing:
          default: {queue: Inbound}
          territories:
            - {id: t1, to: {queue: X}}
            - {id: t2, country: DE, employees: {min: 500, max: 10}, to: {queue: X}}
          pools:
            - name: b
              members:
                - id: B
                  out_of_office:
                    - {from: "2026-12-20T00:00:00", to: "2026-12-21T00:00:00Z"}
                    - {from: "2026-12-22T00:00:00Z", to: "2026-12-21T00:00:00Z"}
                    - {form: "2026-12-22T00:00:00Z", to: "2026-12-23T00:00:00Z"}
        """
    )
    assert [(p.line, p.rule_id, p.suggestion) for p in found] == [
        (5, "t1", None),
        (6, "t2", None),
        (12, None, None),
        (13, None, None),
        (14, None, "from"),
    ]
    assert "needs at least one of country, state, industry or employees" in found[0].message
    assert "'employees' has min 500 above max 10" in found[1].message
    assert "has no UTC offset" in found[2].message
    assert "must end after it starts" in found[3].message


def test_routing_problems_come_with_the_rules_problems_at_once() -> None:
    found = problems(
        """\
        scoring:
          - {id: s, when: {field: anual_revenue, op: gte, value: 1}, points: 1}
        routing:
          default: {queue: Inbound}
          rules: [{id: r, when: {field: contry, op: eq, value: DE}, to: {queue: X}}]
        """
    )
    assert [(p.line, p.rule_id, p.suggestion) for p in found] == [(3, "s", "annual_revenue"), (6, "r", "country")]


def test_limits_are_enforced() -> None:
    pools = "\n".join(f"    - {{name: p{i}, members: [{{id: A}}]}}" for i in range(MAX_POOLS + 1))
    problem = only(f"routing:\n  default: {{queue: Inbound}}\n  pools:\n{pools}\n")
    assert f"routing has {MAX_POOLS + 1} pools; the limit is {MAX_POOLS}" in problem.message
    members = ", ".join(f"{{id: m{i}}}" for i in range(MAX_MEMBERS + 1))
    problem = only(f"routing:\n  default: {{queue: Inbound}}\n  pools:\n    - {{name: p, members: [{members}]}}\n")
    assert f"pool 'p' has {MAX_MEMBERS + 1} members; the limit is {MAX_MEMBERS}" in problem.message


def test_a_broken_routing_section_raises_the_ruleset_error() -> None:
    with pytest.raises(RulesetError, match=re.escape("rules.yaml:2: routing: 'routing' must be a mapping")):
        parse_ruleset('version: "1"\nrouting: [1]\n', "rules.yaml")
