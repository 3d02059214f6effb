"""Plain-language text of a routing decision (an ``Assignment.as_dict()``), for people reading the audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = ["describe_target", "explain_assignment"]

_REASONS = {
    "switched_off": "skipped: switched off (active: false)",
    "out_of_office": "skipped: out of office",
    "outside_working_hours": "skipped: outside working hours",
    "over_daily_cap": "skipped: reached the daily cap",
    "over_window_cap": "skipped: reached the cap for the rolling window",
    "already_tried": "skipped: already tried for this lead",
}


def describe_target(raw: object) -> str:
    """A target as written in a routing decision, ``{"pool": "emea"}``, in words: ``pool 'emea'``."""
    if isinstance(raw, Mapping) and len(raw) == 1:
        ((kind, name),) = raw.items()
        return f"{kind} {name!r}"
    return repr(raw)


def explain_assignment(decision: Mapping[str, object]) -> str:
    """One line for the pool and request, one per candidate (weight, leads so far, pointer, why skipped), and the
    result."""
    at = decision.get("at")
    when = ""
    if isinstance(at, int | float):
        when = " at " + datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    elif isinstance(decision.get("decided_at"), str):  # a routing-decisions record carries an ISO time instead
        when = f" at {decision['decided_at']}"
    strategy = decision.get("strategy")
    shown = f" ({strategy})" if isinstance(strategy, str) else ""
    lines = [f"pool {decision.get('pool')!r}{shown}, request {decision.get('request_id')!r}{when}"]
    chosen = decision.get("member")
    candidates = decision.get("candidates")
    for cand in candidates if isinstance(candidates, list) else []:
        if not isinstance(cand, Mapping):
            continue
        name = cand.get("member")
        pointer = cand.get("pointer")
        shown = f"{pointer:.4f}" if isinstance(pointer, int | float) else "?"
        skipped = cand.get("skipped")
        if skipped is not None:
            verdict = _REASONS.get(str(skipped), f"skipped: {skipped}")
        elif name == chosen:
            verdict = "chosen (lowest pointer among those within their share)"
        else:
            verdict = "available, not chosen"
        lines.append(
            f"  {name}: weight {cand.get('weight')}, {cand.get('count')} leads so far, pointer {shown} - {verdict}"
        )
    target = describe_target(decision.get("target"))
    if decision.get("overflow"):
        lines.append(f"result: every member was skipped; the lead overflows to {target}")
    else:
        lines.append(f"result: assigned to {target}")
    return "\n".join(lines)
