"""The demo's web forms: what each kind of visitor posts is what the intake's pure part makes of it."""

from __future__ import annotations

import datetime as dt

from rich.console import Console

from worker.lead.form import Accepted, Honeypot, Invalid, form_events
from worker.tools._demo_intake import FormPost, IntakeRun, demo_forms, web_summary

KNOWN = [
    {"first_name": "Ashley", "last_name": "Lopez", "company": "Quantumwave", "email": "ashley.lopez@quantumwave.ca"},
    {"first_name": "Ravi", "last_name": "Shah", "company": "Acme", "email": "ravi@acme.example"},
    {"first_name": "No", "last_name": "Email", "company": "Nowhere"},
]
NOW = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)


def _outcome(post: FormPost) -> Accepted | Invalid | Honeypot:
    return form_events(post.fields, received_at=NOW, honeypot="hp_name")


def test_every_kind_of_visitor_gets_the_answer_the_demo_shows() -> None:
    posts = demo_forms(KNOWN, seed=42, new=5, known=2)
    kinds = [p.kind for p in posts]
    assert kinds == ["new"] * 5 + ["again"] * 2 + ["known"] * 2 + ["bot", "invalid"]
    outcomes = [_outcome(p) for p in posts]
    for post, outcome in zip(posts, outcomes, strict=True):
        if post.kind in ("new", "again", "known"):
            assert isinstance(outcome, Accepted), (post, outcome)
    assert isinstance(outcomes[-2], Honeypot)
    invalid = outcomes[-1]
    assert isinstance(invalid, Invalid)
    assert set(invalid.problems) == {"email", "employees", "favourite_colour"}


def test_a_double_submit_is_the_same_lead_and_the_same_events() -> None:
    posts = demo_forms(KNOWN, seed=1, new=3, known=0)
    first, again = _outcome(posts[0]), _outcome(posts[3])
    assert isinstance(first, Accepted)
    assert isinstance(again, Accepted)
    assert posts[3].kind == "again"
    assert again.records() == first.records()


def test_known_people_come_back_under_a_new_lead_id_with_their_email() -> None:
    posts = [p for p in demo_forms(KNOWN, seed=3, new=0, known=5) if p.kind == "known"]
    assert len(posts) == 2  # the lead without an email cannot be posted again
    assert {p.fields["email"] for p in posts} == {KNOWN[0]["email"], KNOWN[1]["email"]}
    for post in posts:
        outcome = _outcome(post)
        assert isinstance(outcome, Accepted)
        assert outcome.lead_id.startswith("web-")


def test_the_summary_names_the_duplicates_the_worker_merged() -> None:
    posts = demo_forms(KNOWN, seed=3, new=1, known=1)
    run = IntakeRun()
    for post in posts:
        outcome = _outcome(post)
        if isinstance(outcome, Accepted | Honeypot):
            run.answers.append((post, 202, {"lead_id": outcome.lead_id}))
        else:
            run.answers.append((post, 400, {"errors": outcome.problems}))
    leads = run.accepted_leads()
    known = next(lead_id for lead_id, kind in leads.items() if kind == "known")
    decisions: list[dict[str, object]] = [
        {"decision_id": f"d-{lead_id}", "lead_id": lead_id, "status": "Open", "duplicate_of": None} for lead_id in leads
    ]
    decisions.append({"event_type": "lead.merged", "lead_id": known, "survivor_id": "L000007"})
    decisions.append({"decision_id": "d-merge", "lead_id": known, "status": "Open", "duplicate_of": "L000007"})
    console = Console(record=True, width=200)
    web_summary(console, run, decisions)
    text = console.export_text()
    assert f"{known} → L000007" in text
    assert "1 of the 1 people already in the CRM" in text
    assert "favourite_colour: unknown field" in text
    assert "bot (honeypot filled)" in text
    assert "lead.merged records on lead-decisions: 1 in all" in text
