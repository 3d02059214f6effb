"""The demo's routing: a ruleset with pools, territories and an SLA, known accounts, and reps who accept leads.

The demo runs the shipped ruleset with its converting rules leaving the owner to routing, plus the routing section
below; it publishes accounts for some of the sample's companies, plays reps who accept most opportunities at once
(the rest breach their SLA and are reassigned), and summarises who got what and why.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from worker.rules import default_ruleset_path
from worker.settings import Settings

__all__ = ["ACCEPT_SHARE", "SLA_SECONDS", "accept_some", "demo_ruleset", "publish_accounts", "routing_summary"]

SLA_SECONDS = 15.0
"""The enterprise pool's SLA in the demo (0.25 minutes): long enough to accept, short enough to watch it breach."""
ACCEPT_SHARE = 0.75
"""Share of opportunities the demo's reps accept at once; the others breach their SLA."""

_ROUTING = """
duplicates:
  match:
    - [email]
    - [email_domain, name, company]
  survivor: first
routing:
  default: {queue: Inbound AEs}
  accounts: {match: true}
  rules:
    - id: enterprise
      description: Large companies go to the enterprise team, whatever their country.
      when: {field: number_of_employees, op: gte, value: 1000}
      to: {pool: enterprise}
  territories:
    - id: north-america
      country: [United States, Canada]
      to: {pool: north-america}
    - id: europe
      country: [United Kingdom, Germany, France, Netherlands, Spain, Sweden, Ireland]
      to: {pool: europe}
  pools:
    - name: enterprise
      strategy: weighted_round_robin
      overflow: {queue: Enterprise Overflow}
      sla: {accept_within_minutes: 0.25, then: next_member}
      members:
        - {id: 005-ANA, weight: 200}
        - {id: 005-BEN, weight: 100}
        - {id: 005-CHO, weight: 100}
    - name: north-america
      strategy: round_robin
      overflow: {queue: NA Overflow}
      caps: {per_day: 80}
      members:
        - {id: 005-DEV}
        - {id: 005-EVA}
        - {id: 005-FIN, out_of_office: [{from: "%(ooo_from)s", to: "%(ooo_to)s"}]}
        - {id: 005-GIL, active: false}
    - name: europe
      strategy: round_robin
      overflow: {queue: Europe Overflow}
      members:
        - {id: 005-HAN}
        - {id: 005-IDA, caps: {per_window: {count: 5, hours: 1}}}
"""


def demo_ruleset(directory: Path, now: dt.datetime) -> Path:
    """Write the demo's ruleset (the shipped one plus duplicates and routing) into ``directory``; returns its path."""
    text = default_ruleset_path().read_text(encoding="utf-8").replace("      queue: Inbound AEs\n", "")
    ooo = {"ooo_from": (now - dt.timedelta(days=1)).isoformat(), "ooo_to": (now + dt.timedelta(days=7)).isoformat()}
    path = directory / "rules-with-routing.yaml"
    path.write_text(text + _ROUTING % ooo, encoding="utf-8")
    return path


def publish_accounts(producer: Any, settings: Settings, leads: Iterable[dict[str, Any]], n: int = 40) -> int:
    """Publish ``n`` of the sample's companies as known accounts, each owned by one of two account managers."""
    websites = sorted({lead["website"] for lead in leads if lead.get("website")})
    chosen = random.Random(7).sample(websites, min(n, len(websites)))  # noqa: S311  # a sample, not a secret
    for i, website in enumerate(chosen):
        account_id = f"001-{i:04d}"
        record = {"account_id": account_id, "owner_id": ("005-KIM", "005-LEO")[i % 2], "website": website}
        producer.send(settings.topic_accounts, key=account_id.encode(), value=orjson.dumps(record))
    producer.flush()
    return len(chosen)


def accept_some(producer: Any, settings: Settings, opportunities: Iterable[dict[str, Any]], seen: set[str]) -> int:
    """Play the reps: accept ``ACCEPT_SHARE`` of the enterprise pool's new opportunities (by a stable draw)."""
    sent = 0
    for opportunity in opportunities:
        routing = opportunity.get("routing") or {}
        opportunity_id = opportunity["opportunity_id"]
        if routing.get("pool") != "enterprise" or opportunity_id in seen or routing.get("attempt") != 1:
            continue
        seen.add(opportunity_id)
        if random.Random(opportunity_id).random() < ACCEPT_SHARE:  # noqa: S311  # a stable draw, not a secret
            event = {
                "event_type": "opportunity.accepted",
                "opportunity_id": opportunity_id,
                "accepted_by": opportunity["owner_id"],
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            producer.send(settings.topic_feedback, key=opportunity_id.encode(), value=orjson.dumps(event))
            sent += 1
    producer.flush()
    return sent


def routing_summary(
    console: Console, opportunities: dict[str, dict[str, Any]], decisions: list[dict[str, Any]], accepted: int
) -> None:
    """Who got the opportunities and why: by pool and member, skips by reason, SLA reassignments."""
    table = Table(title=f"routing: where the {len(opportunities):,} opportunities went (latest owner)")
    for col in ("via", "pool", "owner or queue", "opportunities"):
        table.add_column(col, justify="right" if col == "opportunities" else "left")
    where = Counter(
        (
            (o.get("routing") or {}).get("via") or "-",
            (o.get("routing") or {}).get("pool") or "-",
            o["owner_id"] or f"queue {o['queue']}",
        )
        for o in opportunities.values()
    )
    for (via, pool, owner), n in sorted(where.items()):
        table.add_row(via, pool, owner, f"{n:,}")
    console.print(table)
    skips = Counter(
        (d["pool"], c["skipped"]) for d in decisions for c in d.get("candidates", []) if c.get("skipped") is not None
    )
    if skips:
        console.print(
            "[bold]members skipped[/]: "
            + ", ".join(f"{reason} {n:,} ({pool})" for (pool, reason), n in sorted(skips.items()))
        )
    breaches = [d for d in decisions if d["reason"] == "sla_breach"]
    breached = {d["opportunity_id"] for d in breaches}
    overflowed = sum(1 for d in breaches if d["overflow"])
    console.print(
        f"[bold]SLA[/] (enterprise pool, {SLA_SECONDS:.0f} s to accept): the demo's reps accepted {accepted:,} "
        f"opportunities; {len(breached):,} were not accepted in time and were routed again {len(breaches):,} times "
        "(to the next member"
        + (f"; {overflowed:,} went to the overflow queue, every member having had its chance)" if overflowed else ")")
    )
    console.print(
        "every routing decision, with its candidates and why each was skipped, is on the routing-decisions topic; "
        "'leadflow route explain --lead ID' tells one lead's story"
    )
