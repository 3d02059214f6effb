"""``leadflow route explain``: why a lead's opportunity went where it went, read back from the audit trail.

The routing-decisions topic holds one record per routing of an opportunity (key = opportunity id): the first
routing at conversion and, for a pool with an SLA, every reassignment or escalation after a missed deadline. This
module reads that topic whole, without a consumer group (nothing is committed, nothing joins a group), picks the
decisions of one lead or opportunity and says each in words: what matched (account, rule, territory or default),
the pool, every candidate with weight, leads so far, pointer and why it was skipped, and the result.

:func:`find_decisions` and :func:`explain_decision` are pure (tested on plain dicts); :func:`run_route_explain`
is the command.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

import orjson

from worker.exceptions import ConfigError
from worker.routing import describe_target, explain_assignment
from worker.settings import Settings

__all__ = ["explain_decision", "explain_decisions", "find_decisions", "run_route_explain"]

Json = dict[str, Any]

_REASONS = {
    "converted": "first routing, when the lead converted",
    "sla_breach": "reassignment: the previous assignee did not accept it within the pool's SLA",
}


def find_decisions(
    values: Iterable[bytes | None], lead: str | None = None, opportunity: str | None = None
) -> list[Json]:
    """The routing decisions of ``lead`` (and/or ``opportunity``) among raw record values, in routing order.

    A record that is not a routing decision is passed over; a decision re-sent after a crash (same ``routing_id``)
    is kept once. Order: by opportunity as first seen, then by attempt (1 at conversion, 2... after SLA breaches).
    """
    found: dict[str, Json] = {}
    for value in values:
        try:
            decision = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            continue
        if not isinstance(decision, dict) or decision.get("event_type") != "routing.decided":
            continue
        if lead is not None and decision.get("lead_id") != lead:
            continue
        if opportunity is not None and decision.get("opportunity_id") != opportunity:
            continue
        found.setdefault(str(decision.get("routing_id")), decision)
    order = {opp: i for i, opp in enumerate(dict.fromkeys(d.get("opportunity_id") for d in found.values()))}
    return sorted(found.values(), key=lambda d: (order[d.get("opportunity_id")], _attempt(d)))


def _attempt(decision: Mapping[str, Any]) -> int:
    attempt = decision.get("attempt")
    return attempt if isinstance(attempt, int) else 0


def _matched(decision: Mapping[str, Any]) -> str:
    """What sent the lead where it went: the account, routing rule, territory or default, and its first target."""
    via, ref = decision.get("via"), decision.get("ref")
    pool = decision.get("pool")
    first = f"pool {pool!r}" if pool is not None else describe_target(decision.get("target"))
    if via == "account":
        return f"matched: known account {ref!r}, whose owner gets it: {first}"
    if via == "rule":
        return f"matched: routing rule {ref!r} -> {first}"
    if via == "territory":
        return f"matched: territory {ref!r} -> {first}"
    if via == "default":
        why = f" ({ref})" if ref else ""
        return f"matched: no account, routing rule or territory; the default target{why} -> {first}"
    return f"matched: {via!r} {ref!r} -> {first}"


def _subject(decision: Mapping[str, Any]) -> str:
    """``opportunity 'opp-...' of lead 'L1'``, or ``lead 'L1' (status Qualified)`` for a lead routed on its status."""
    lead = decision.get("lead_id")
    if decision.get("subject") == "lead" or decision.get("opportunity_id") is None:
        request = str(decision.get("request_id") or "")
        status = request.rsplit("#", 1)[0].split(":", 2)[-1] if request.startswith("lead:") else None
        return f"lead {lead!r}" + (f" on entering status {status!r}" if status else "")
    return f"opportunity {decision.get('opportunity_id')!r} of lead {lead!r}"


def explain_decision(decision: Mapping[str, Any]) -> str:
    """One routing decision in words: which routing, what matched, the pool's candidates and the result."""
    reason = decision.get("reason")
    why = _REASONS.get(str(reason), str(reason))
    if decision.get("subject") == "lead" and reason == "converted":
        why = "routing of the lead itself"
    lines = [
        f"{_subject(decision)}, attempt {decision.get('attempt')}: {why}",
        f"  decided at {decision.get('decided_at')} by ruleset {decision.get('ruleset_version')}",
        f"  {_matched(decision)}",
    ]
    pool = decision.get("pool")
    candidates = decision.get("candidates")
    if pool is not None and candidates:
        lines.extend(f"  {line}" for line in explain_assignment(decision).splitlines())
    elif pool is not None:  # a pool without candidates: the SLA escalated it past the members
        lines.append(f"  result: escalated (the pool's SLA says so) to {describe_target(decision.get('target'))}")
    else:
        lines.append(f"  result: routed directly to {describe_target(decision.get('target'))}")
    return "\n".join(lines)


def explain_decisions(decisions: Sequence[Mapping[str, Any]]) -> str:
    """Every decision explained, separated by a blank line, with a closing line naming where it ended up."""
    parts = [explain_decision(d) for d in decisions]
    last = decisions[-1]
    member = last.get("member")
    final = f"user {member!r}" if member is not None else describe_target(last.get("target"))
    what = "lead" if last.get("opportunity_id") is None else "opportunity"
    count = f"{len(decisions)} routing decision" + ("s" if len(decisions) != 1 else "")
    return "\n\n".join([*parts, f"{count}; the {what} is now with {final}"])


def run_route_explain(
    settings: Settings, lead: str | None, opportunity: str | None, as_json: bool, out: TextIO, err: TextIO
) -> int:
    """``leadflow route explain``: 0 when decisions were found and printed, 1 when there are none."""
    from worker.stream.reader import read_topic
    from worker.stream.topics import check_reachable

    if lead is None and opportunity is None:
        msg = "route explain needs --lead LEAD_ID or --opportunity OPPORTUNITY_ID"
        raise ConfigError(msg)
    topic = settings.topic_routing_decisions
    check_reachable(settings, f"read the routing-decisions topic {topic!r}")
    records, _ = read_topic(settings, topic, "route-explain")
    decisions = find_decisions((r.value for r in records), lead, opportunity)
    if not decisions:
        wanted = " and ".join(
            f"{what} {value!r}" for what, value in (("lead", lead), ("opportunity", opportunity)) if value is not None
        )
        print(
            f"leadflow: no routing decision for {wanted} on topic {topic!r} ({len(records):,} records read); "
            "was it converted by a ruleset with a routing: section, and is LEADFLOW_TOPIC_ROUTING_DECISIONS right?",
            file=err,
        )
        return 1
    if as_json:
        out.write(orjson.dumps(decisions, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(explain_decisions(decisions), file=out)
    return 0
