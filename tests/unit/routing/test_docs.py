"""docs/ROUTING.md: every YAML example compiles (or fails with the message shown), every output shown is computed.

The page marks its blocks with an HTML comment on the line before the fence:

- ``<!-- example: NAME -->`` before a ```yaml block: a full ruleset (starting with ``version:``) or a routing
  section alone (starting with ``routing:``), which is compiled after a ``version`` line. Every ```yaml block of
  the page must be marked.
- ``<!-- error: NAME -->`` before a ```text block: the example NAME is refused with exactly this message.
- ``<!-- output: NAME -->`` before a ```text block: exactly what ``OUTPUTS[NAME]`` computes from the examples
  with the real router (``Routing.route``, ``assign``, ``route_batch``, the SLA clock, ``AccountIndex``).
- ``<!-- json: PATH -->`` before a ```json block: the same JSON as the file at PATH in the repository.
- ``<!-- accounts: NAME -->`` before a ```json block: account records, as the accounts topic carries them.

``python -m tests.unit.routing.test_docs`` prints every output and error, to paste after a change.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml

from worker.exceptions import RulesetError
from worker.lead.state import PROFILE_FIELDS
from worker.routing import SKIP_REASONS, AccountIndex, Pool, Routing, Target, assign, explain_assignment
from worker.routing import _limits as limits
from worker.routing.flow import route_batch, route_opportunity
from worker.routing.sla import accepted_notice, sla_batch, sla_breaches
from worker.rules import Ruleset, parse_ruleset
from worker.stream.accounts import decode_account
from worker.stream.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "ROUTING.md"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
MARKED = re.compile(r"^<!-- (example|error|output|json|accounts): ([\w./-]+) -->\n```(\w*)\n(.*?)^```", re.M | re.S)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


class Block(NamedTuple):
    kind: str
    name: str
    lang: str
    body: str


def blocks() -> list[Block]:
    return [Block(*m.groups()) for m in MARKED.finditer(DOC.read_text(encoding="utf-8"))]


def marked(kind: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for block in blocks():
        if block.kind == kind:
            assert block.name not in found, f"two {kind} blocks named {block.name!r}"
            found[block.name] = block.body
    return found


def ruleset_text(name: str) -> str:
    text = marked("example")[name]
    return text if text.startswith("version:") else 'version: "1"\n' + text


def ruleset(name: str) -> Ruleset:
    return parse_ruleset(ruleset_text(name), "rules.yaml")


def routing(name: str) -> Routing:
    compiled = ruleset(name).routing
    assert compiled is not None
    return compiled


# --- what the outputs are computed from ------------------------------------------------------------------------


def at(text: str, tz: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def profile(**values: object) -> dict[str, object]:
    out: dict[str, object] = dict.fromkeys(PROFILE_FIELDS)
    out.update(values)
    return out


def describe(target: Target) -> str:
    return f"{target.kind} {target.id}"


def pool_run(pool: Pool, times: Iterable[float], state: dict[str, Any] | None = None) -> tuple[list[str], Any]:
    chosen = []
    for i, now in enumerate(times):
        state, decision = assign(pool, state, f"r{len(chosen)}-{i}", now)
        chosen.append(decision.member or describe(decision.target))
    return chosen, state


MONDAY = at("2026-11-23T10:00", "UTC")


def quickstart() -> str:
    compiled = routing("quickstart")
    leads = [
        ("Mon 09:00", "Germany, 120 employees", {"country": "Germany", "number_of_employees": 120}),
        ("Mon 09:05", "Austria, 40 employees", {"country": "Austria", "number_of_employees": 40}),
        ("Mon 09:10", "Germany, 9,000 employees", {"country": "Germany", "number_of_employees": 9000}),
        ("Mon 09:15", "France, 300 employees", {"country": "France", "number_of_employees": 300}),
        ("Sat 11:00", "Switzerland, 80 employees", {"country": "Switzerland", "number_of_employees": 80}),
    ]
    days = {"Mon": "2026-11-23", "Sat": "2026-11-28"}
    state = None
    lines = []
    for when, text, values in leads:
        lead = profile(**values)
        route = compiled.route(dict(lead), lead, None)
        how = f"{route.via} {route.ref}" if route.ref else route.via
        goes = describe(route.target)
        if route.target.kind == "pool":
            day, clock = when.split()
            now = at(f"{days[day]}T{clock}", "Europe/Berlin")
            state, decision = assign(compiled.pools[route.target.id], state, text, now)
            goes += f" -> {describe(decision.target)}"
            if decision.overflow:
                goes += " (overflow: nobody works on Saturday)"
        lines.append(f"{when}  {text:<26} {how:<20} {goes}")
    return "\n".join(lines)


def strategies() -> str:
    compiled = routing("strategies")
    rotation, weighted = compiled.pools["rotation"], compiled.pools["weighted"]
    times = [MONDAY + i for i in range(60)]
    lines = [f"rotation, first 7 leads: {', '.join(pool_run(rotation, times[:7])[0])}"]
    lines.append(f"weighted, first 8 leads: {', '.join(pool_run(weighted, times[:8])[0])}")
    state = None
    for n in range(4):
        state, decision = assign(weighted, state, f"r{n}", times[n])
        pointers = ", ".join(f"{c.member} {c.pointer:g}" for c in decision.candidates)
        lowest = min(decision.candidates, key=lambda c: c.pointer).member
        note = f" ({lowest} set aside by the quota guard)" if lowest != decision.member else ""
        lines.append(f"  lead {n + 1}: pointers {pointers} -> {decision.member}{note}")
    chosen, _ = pool_run(weighted, times)
    split = ", ".join(f"{m} {n}" for m, n in sorted(Counter(chosen).items()))
    lines.append(f"weighted, 60 leads: {split}")
    return "\n".join(lines)


def holiday() -> str:
    support = routing("holiday").pools["support"]
    away = [at("2026-11-23T10:00", "UTC") + 600 * i for i in range(6)]
    back = [at("2026-11-24T10:00", "UTC") + 600 * i for i in range(6)]
    during, state = pool_run(support, away)
    after, _ = pool_run(support, back, state)
    return "\n".join(
        [
            f"Mon 10:00-10:50, A away:  {', '.join(during)}",
            f"Tue 10:00-10:50, A back:  {', '.join(after)}",
        ]
    )


def pointer_only(counts: dict[str, int], members: list[str], n: int) -> list[str]:
    """What the lowest pointer alone (no quota guard) would do, for comparison."""
    counts = dict(counts)
    out = []
    for _ in range(n):
        best = min(members, key=lambda m: (counts.get(m, 0) + 1, members.index(m)))
        counts[best] = counts.get(best, 0) + 1
        out.append(best)
    return out


def joined() -> str:
    two, three = routing("team-of-two").pools["team"], routing("team-of-three").pools["team"]
    before, state = pool_run(two, [MONDAY + i for i in range(10)])
    counts = {m: s["count"] for m, s in state["members"].items()}
    after, _ = pool_run(three, [MONDAY + 100 + i for i in range(9)], state)
    alone = pointer_only(counts, ["A", "B", "C"], 9)
    return "\n".join(
        [
            f"10 leads, team of two:       {', '.join(before)}",
            f"9 more, after C joins:       {', '.join(after)}",
            f"(by the lowest pointer alone: {', '.join(alone)})",
        ]
    )


def availability() -> str:
    pool = routing("availability").pools["inside-sales"]
    start = at("2026-11-23T10:00", "Europe/London")
    state = None
    decision = None
    for i in range(4):
        state, decision = assign(pool, state, f"lead-{i + 1}", start + 60 * i)
    assert decision is not None
    _, saturday = assign(pool, state, "lead-5", at("2026-11-28T10:00", "Europe/London"))
    return explain_assignment(decision.as_dict()) + "\n\n" + explain_assignment(saturday.as_dict())


def territories() -> str:
    compiled = routing("territories")
    leads = [
        {"country": "Germany", "number_of_employees": 120},
        {"country": "germany", "number_of_employees": 2500},
        {"country": "Austria"},
        {"country": "United States", "state": "CA"},
        {"country": "United States", "state": "NY", "industry": "Banking", "number_of_employees": 800},
        {"country": "United States", "state": "NY", "industry": "Banking", "number_of_employees": 20},
    ]
    lines = []
    for values in leads:
        lead = profile(**values)
        route = compiled.route(dict(lead), lead, None)
        text = ", ".join(f"{k} {v!r}" if isinstance(v, str) else f"{k} {v}" for k, v in values.items())
        how = f"{route.via} {route.ref}" if route.ref else route.via
        lines.append(f"{text:<82} -> {how}: {describe(route.target)}")
    return "\n".join(lines)


def account_index() -> AccountIndex:
    index = AccountIndex()
    for record in json.loads(marked("accounts")["sample"]):
        account_id, account = decode_account(record["account_id"].encode(), orjson.dumps(record))
        index.put(account_id, account)
    return index


def accounts() -> str:
    index = account_index()
    leads = [
        ("ada@northwind.example", None, None),
        ("jo@eu.northwind.example", None, None),
        ("sam@gmail.com", "www.acme.example", None),
        ("sam@gmail.com", None, "ACME Co."),
        ("sam@gmail.com", None, "Gmail Fans"),
        ("pat@initech.example", None, None),
        ("lee@gmail.com", None, None),
    ]
    lines = []
    for email, website, company in leads:
        parts = [f"email {email}"]
        if website:
            parts.append(f"website {website}")
        if company:
            parts.append(f"company {company!r}")
        match = index.match(email, website, company)
        if match is None:
            found = "no account"
        else:
            owner = f"owner {match.owner_id}" if match.owner_id else "no owner"
            found = f"{match.account_id} by {match.matched_by}, {owner}"
        lines.append(f"{', '.join(parts):<52} -> {found}")
    return "\n".join(lines)


class Rec(NamedTuple):
    key: bytes | None
    value: bytes | None
    topic: str = "t"
    partition: int = 0
    offset: int = 0


def sla() -> str:
    return "\n".join(sla_story()[0])


def route_explain() -> str:
    from worker.tools.route_explain import explain_decisions, find_decisions

    return explain_decisions(find_decisions(sla_story()[1], lead="L-1"))


def sla_story() -> tuple[list[str], list[bytes]]:
    """The SLA example's story, minute by minute: the lines shown and the routing-decisions records sent."""
    rs = ruleset("sla")
    compiled = rs.routing
    assert compiled is not None
    pools: dict[str, bytes] = {}
    done: dict[tuple[str, str], bytes] = {}
    clocks: dict[str, bytes] = {}
    lines: list[str] = []
    decisions: list[bytes] = []
    fmt = "%H:%M"

    def stamp(now: float) -> str:
        return dt.datetime.fromtimestamp(now, dt.UTC).strftime(fmt)

    def clock(records: list[tuple[bytes, bytes]]) -> None:
        out, _ = sla_batch([Rec(k, v) for k, v in records], clocks.get)
        clocks.update(out.states)

    def requests(messages: list[tuple[str, dict[str, Any]]], now: float) -> None:
        records = [Rec(pool.encode(), orjson.dumps(message)) for pool, message in messages]
        out = route_batch(
            compiled, records, pools.get, lambda r, p: done.get((r, p)), now, rs.version, Target("queue", "X")
        )
        pools.update(out.pool_states)
        done.update(out.done)
        decisions.extend(value for _, value in out.routing_decisions)
        for (_, opp), (_, dec) in zip(out.opportunities, out.routing_decisions, strict=True):
            o, d = orjson.loads(opp), orjson.loads(dec)
            who = f"user {o['owner_id']}" if o["owner_id"] else f"queue {o['queue']}"
            tried = [c["member"] for c in d["candidates"] if c["skipped"] == "already_tried"]
            extra = f"  ({', '.join(tried)}: already_tried)" if tried else ""
            if d["overflow"]:
                extra += "  overflow: the clock stops"
            elif d["member"] is None:
                extra += "  escalated: the clock stops"
            lines.append(
                f"{stamp(now)}  {o['opportunity_id']}  {o['event_type']:<22}  {who:<17}"
                f"  attempt {d['attempt']}, {d['reason']}{extra}"
            )
        clock(out.sla_notices)

    start = at("2026-11-23T10:00", "UTC")
    plan: dict[float, list[tuple[str, str]]] = {
        start: [("convert", "opp-1:Initrode")],
        start + 5 * 60: [("convert", "opp-2:Hooli")],
        start + 6 * 60: [("convert", "opp-3:Globex")],
        start + 12 * 60: [("accept", "opp-2:bob")],
    }
    for minute in range(121):
        now = start + 60 * minute
        for action, arg in plan.get(now, []):
            opp_id, value = arg.split(":")
            if action == "convert":
                lead = profile(company=value)
                route = compiled.route(dict(lead), lead, None)
                opportunity = {"opportunity_id": opp_id, "lead_id": f"L-{opp_id[4:]}"}
                _, _, request = route_opportunity(opportunity, route, rs.version, now)
                assert request is not None
                requests([(request.pool, request.message)], now)
            else:
                event = {"event_type": "opportunity.accepted", "opportunity_id": opp_id, "accepted_by": value}
                clock([accepted_notice(b"any", orjson.dumps(event))])
                lines.append(f"{stamp(now)}  {opp_id}  opportunity.accepted    by {value}: its clock stops")
        states = {k.decode() if isinstance(k, bytes) else k: orjson.loads(v) for k, v in clocks.items()}
        due = sla_breaches(states, now)
        for _pool, _request, notice in due:
            clock([(notice["opportunity_id"].encode(), orjson.dumps(notice))])
        if due:
            requests([(pool, request) for pool, request, _ in due], now)
    return lines, decisions


def lead_statuses() -> str:
    from tests.builders import activity, upsert
    from worker.core import Engine, decide
    from worker.scoring import default_model_path, load_model

    rs = ruleset("lead-statuses")
    engine = Engine(rs, load_model(default_model_path()))
    now = at("2026-11-23T10:00", "UTC")
    records = []
    lines = []
    for lead_id in ("L-1", "L-2"):
        state, _ = decide(engine, None, upsert(f"{lead_id}-u", lead_id=lead_id, country="Germany"), now)
        for i in range(3):
            state, decided = decide(engine, state, activity(f"{lead_id}-{i}", "page_view", lead_id=lead_id), now)
            request = decided.route_request
            status = decided.decision["status"]
            lines.append(f"{lead_id}, page view {i + 1}: {status}" + (", routed" if request else ""))
            if request is not None:
                records.append(Rec(request.pool.encode(), orjson.dumps(request.message)))
    out = route_batch(rs.routing, records, {}.get, lambda _r, _p: None, now, rs.version, Target("queue", "X"))
    for key, value in out.routing_decisions:
        d = orjson.loads(value)
        lines.append(
            f"routing-decisions, key {key.decode()}: subject {d['subject']}, request {d['request_id']}, "
            f"opportunity_id {json.dumps(d['opportunity_id'])}, {d['via']} {d['ref']}, "
            f"pool {d['pool']}, member {d['member']}"
        )
    assert out.opportunities == []
    return "\n".join(lines)


OUTPUTS: dict[str, Callable[[], str]] = {
    "lead-statuses": lead_statuses,
    "quickstart": quickstart,
    "strategies": strategies,
    "holiday": holiday,
    "joined": joined,
    "availability": availability,
    "territories": territories,
    "accounts": accounts,
    "sla": sla,
    "route-explain": route_explain,
}


def error_of(name: str) -> str:
    try:
        ruleset(name)
    except RulesetError as exc:
        return str(exc)
    return "(compiles)"


# --- the tests ---------------------------------------------------------------------------------------------------


def test_every_yaml_block_is_a_marked_example() -> None:
    text = DOC.read_text(encoding="utf-8")
    yaml_blocks = [m.group(2) for m in FENCE.finditer(text) if m.group(1) == "yaml"]
    assert sorted(yaml_blocks) == sorted(marked("example").values())
    assert len(yaml_blocks) >= 10


@pytest.mark.parametrize("name", sorted(set(marked("example")) - set(marked("error"))))
def test_the_example_compiles_with_routing(name: str) -> None:
    assert routing(name) is not None


@pytest.mark.parametrize("name", sorted(marked("error")))
def test_the_error_shown_is_the_error_given(name: str) -> None:
    assert marked("error")[name].strip() == error_of(name)


def test_every_output_is_computed() -> None:
    assert set(marked("output")) == set(OUTPUTS)


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_the_output_shown_is_what_the_router_does(name: str) -> None:
    assert marked("output")[name].rstrip("\n") == OUTPUTS[name]()


@pytest.mark.parametrize("path", sorted(marked("json")))
def test_json_shown_is_the_file(path: str) -> None:
    assert json.loads(marked("json")[path]) == json.loads((ROOT / path).read_text(encoding="utf-8"))


def test_the_reference_example_uses_every_key() -> None:
    from worker.routing import _schema

    used = set(re.findall(r"^\s*-?\s*(\w+):", marked("example")["reference"], re.M))
    used |= set(re.findall(r"[{,]\s*(\w+):", marked("example")["reference"]))
    models = [getattr(_schema, name) for name in _schema.__all__ if name.endswith("Doc")]
    keys = {key for model in models for key in model.model_fields}
    assert keys - used == set()


def test_the_limits_table_is_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    for what, value in (
        ("pools", limits.MAX_POOLS),
        ("members in one pool", limits.MAX_MEMBERS),
        ("routing rules", limits.MAX_ROUTING_RULES),
        ("territories", limits.MAX_TERRITORIES),
        ("out-of-office periods of one member", limits.MAX_OUT_OF_OFFICE),
    ):
        assert f"| {what} | {value:,} |" in text
    for pool, fails in (
        ("strategy: weighted_round_robin, members: [{id: A, weight: 10000}]", False),
        ("strategy: weighted_round_robin, members: [{id: A, weight: 10001}]", True),
        ("sla: {accept_within_minutes: 527040}, members: [{id: A}]", False),
        ("sla: {accept_within_minutes: 527041}, members: [{id: A}]", True),
        ("caps: {per_window: {count: 1, hours: 8784}}, members: [{id: A}]", False),
        ("caps: {per_window: {count: 1, hours: 8785}}, members: [{id: A}]", True),
    ):
        assert _refused(f"routing:\n  default: {{queue: Q}}\n  pools: [{{name: p, {pool}}}]\n") is fails, pool
    for shown in ("1 to 10,000", "up to 527,040 (366 days)", "up to 8,784 (366 days)"):
        assert shown in text


def _refused(routing_text: str) -> bool:
    try:
        parse_ruleset('version: "1"\n' + routing_text)
    except RulesetError:
        return True
    return False


def test_the_skip_reasons_are_listed_in_the_order_they_are_checked() -> None:
    text = DOC.read_text(encoding="utf-8")
    listed = re.findall(r"^\| `(\w+)` \| (?:the member|the lead)", text, re.M)
    assert tuple(listed) == SKIP_REASONS


def test_every_routing_metric_is_documented_and_exists() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    Metrics(registry)
    names = {metric.name for metric in registry.collect()}
    text = DOC.read_text(encoding="utf-8")
    shown = set(re.findall(r"^\| `(leadflow_\w+)", text, re.M))
    routing_metrics = {
        n for n in names if n.startswith(("leadflow_routing", "leadflow_sla", "leadflow_accounts", "leadflow_time_to"))
    }
    assert {n.removesuffix("_total") for n in shown} == routing_metrics


def test_every_setting_named_exists() -> None:
    from worker.settings import Settings

    named = set(re.findall(r"LEADFLOW_([A-Z_]+)", DOC.read_text(encoding="utf-8")))
    assert {name.lower() for name in named} <= set(Settings.model_fields)


def test_the_company_names_shown_normalise_as_said() -> None:
    from worker.routing import normalize_company

    assert '"The ACME Corp." and "Acme GmbH" are\n   both `acme`' in DOC.read_text(encoding="utf-8")
    assert normalize_company("The ACME Corp.") == normalize_company("Acme GmbH") == "acme"


def test_the_alerts_named_are_in_alerts_yml() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"^\| `(Leadflow\w+)` \|", text, re.M))
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    defined = {rule["alert"] for group in groups for rule in group["rules"]}
    assert named
    assert named <= defined


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not ``-`` or ``_``), spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.M)}


def test_links_to_headings_have_their_heading() -> None:
    text = DOC.read_text(encoding="utf-8")
    for target, anchor in re.findall(r"\]\(([\w./-]*)#([\w-]+)\)", text):
        path = DOC if not target else (DOC.parent / target).resolve()
        assert anchor in _anchors(path), f"{target}#{anchor}"


if __name__ == "__main__":
    for name, make in OUTPUTS.items():
        sys.stdout.write(f"=== output: {name}\n{make()}\n")
    for name in marked("error"):
        sys.stdout.write(f"=== error: {name}\n{error_of(name)}\n")
