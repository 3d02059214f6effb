"""Web-to-lead forms into contract events (worker/lead/form.py): the mapping, the ids, the problems, totality."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from worker.lead.events import LeadActivity, LeadUpserted
from worker.lead.form import Accepted, Honeypot, Invalid, form_events, lead_id_for, parse_body
from worker.lead.parse import parse_event

NOW = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)
SALESFORCE_FORM = (
    b"oid=00D000000000001&retURL=https%3A%2F%2Fexample.com%2Fthanks&first_name=Ada&last_name=Lovelace"
    b"&email=Ada%40Example.com&company=Analytical+Engines&phone=%2B44+20+7946+0000&title=CTO&lead_source=Web"
    b"&city=London&state=&country=UK&zip=N1+9GU&URL=engines.example&description=Wants+a+demo&industry=Technology"
    b"&employees=250&revenue=12000000&00N5e00000ABCDEFG=Enterprise&submit=Submit&form=pricing-page"
)


def accepted(fields: dict[str, Any], at: dt.datetime = NOW) -> Accepted:
    result = form_events(fields, received_at=at, honeypot="hp_name")
    assert isinstance(result, Accepted), result
    return result


def test_a_salesforce_web_to_lead_form_maps_onto_the_contract() -> None:
    fields = parse_body("application/x-www-form-urlencoded; charset=UTF-8", SALESFORCE_FORM)
    assert isinstance(fields, dict)
    result = accepted(fields)
    upsert, submit = result.events
    assert isinstance(upsert, LeadUpserted)
    assert isinstance(submit, LeadActivity)
    assert result.lead_id == upsert.lead_id == submit.lead_id == lead_id_for("ada@example.com")
    lead = upsert.lead
    assert (lead.first_name, lead.last_name, lead.email, lead.company) == (
        "Ada",
        "Lovelace",
        "ada@example.com",
        "Analytical Engines",
    )
    assert (lead.phone, lead.title, lead.lead_source, lead.city, lead.country, lead.industry) == (
        "+44 20 7946 0000",
        "CTO",
        "Web",
        "London",
        "UK",
        "Technology",
    )
    assert lead.state is None  # left empty on the form: unchanged, not cleared
    assert lead.website == "engines.example"
    assert lead.number_of_employees == 250
    assert lead.annual_revenue == 12_000_000
    assert lead.custom == {"zip": "N1 9GU", "description": "Wants a demo", "00N5e00000ABCDEFG": "Enterprise"}
    assert submit.activity.type == "form_submit"
    assert submit.activity.detail == "pricing-page"
    assert upsert.occurred_at == submit.occurred_at == NOW


def test_records_are_what_the_worker_accepts() -> None:
    result = accepted({"email": "a@b.example", "company": "B", "custom.plan": "pro"})
    for key, value in result.records():
        assert key == result.lead_id.encode()
        event = parse_event(key, value)
        assert event.lead_id == result.lead_id
    assert orjson.loads(result.records()[0][1])["lead"]["custom"] == {"plan": "pro"}


def test_a_double_submit_is_the_same_lead_and_the_same_events() -> None:
    first = accepted({"email": "ada@example.com", "first_name": "Ada"})
    again = accepted({"email": " ADA@example.com ", "first_name": "Ada"}, at=NOW + dt.timedelta(seconds=3))
    assert again.lead_id == first.lead_id
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert len({e.event_id for e in first.events}) == 2


def test_other_answers_or_another_day_are_a_new_submission_of_the_same_lead() -> None:
    first = accepted({"email": "ada@example.com", "first_name": "Ada"})
    other = accepted({"email": "ada@example.com", "first_name": "Ada", "title": "CTO"})
    tomorrow = accepted({"email": "ada@example.com", "first_name": "Ada"}, at=NOW + dt.timedelta(days=1))
    assert other.lead_id == tomorrow.lead_id == first.lead_id
    ids = {e.event_id for r in (first, other, tomorrow) for e in r.events}
    assert len(ids) == 6


def test_every_problem_is_named_by_the_form_field_that_has_it() -> None:
    result = form_events(
        {"email": "not-an-email", "employees": "many", "revenue": "-5", "favourite_colour": "blue", "phone": "9" * 65},
        received_at=NOW,
    )
    assert isinstance(result, Invalid)
    assert set(result.problems) == {"email", "employees", "revenue", "favourite_colour", "phone"}
    assert "not an email address" in result.problems["email"]
    assert "integer" in result.problems["employees"]
    assert "unknown field" in result.problems["favourite_colour"]


def test_an_email_is_required() -> None:
    result = form_events({"first_name": "Ada"}, received_at=NOW)
    assert isinstance(result, Invalid)
    assert result.problems == {"email": "missing; a web lead needs an email address"}


def test_two_names_for_one_field_are_refused() -> None:
    result = form_events({"email": "a@b.example", "URL": "a.example", "website": "b.example"}, received_at=NOW)
    assert isinstance(result, Invalid)
    assert "website" in result.problems


def test_a_filled_honeypot_produces_nothing() -> None:
    result = form_events({"email": "bot@spam.example", "hp_name": "Buy now"}, received_at=NOW, honeypot="hp_name")
    assert isinstance(result, Honeypot)
    assert result.lead_id == lead_id_for("bot@spam.example")
    assert isinstance(accepted({"email": "ada@example.com", "hp_name": ""}), Accepted)


def test_bodies_that_are_not_forms_are_refused_with_the_reason() -> None:
    assert isinstance(parse_body("text/plain", b"email=a@b.example"), Invalid)
    assert isinstance(parse_body("application/json", b"[1, 2]"), Invalid)
    assert isinstance(parse_body("application/json", b"{"), Invalid)
    assert isinstance(parse_body("application/x-www-form-urlencoded", b"email=%FF"), Invalid)
    twice = parse_body("application/x-www-form-urlencoded", b"email=a%40b.example&email=c%40d.example")
    assert isinstance(twice, Invalid)
    assert "email" in twice.problems
    assert parse_body("application/json", b'{"email": "a@b.example", "employees": 5}') == {
        "email": "a@b.example",
        "employees": 5,
    }


FIELD_NAMES = st.sampled_from(
    ["email", "first_name", "company", "employees", "revenue", "URL", "website", "zip", "custom.x", "form", "hp_name"]
) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


@given(
    fields=st.dictionaries(FIELD_NAMES, JSON_VALUES | st.emails(), max_size=12),
    at=st.datetimes(timezones=st.just(dt.UTC)),
)
def test_any_fields_give_valid_events_or_problems_never_an_exception(fields: dict[str, Any], at: dt.datetime) -> None:
    result = form_events(fields, received_at=at, honeypot="hp_name")
    if isinstance(result, Accepted):
        for key, value in result.records():
            assert parse_event(key, value).lead_id == result.lead_id
    elif isinstance(result, Invalid):
        assert result.problems
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in result.problems.items())
    else:
        assert isinstance(result, Honeypot)


@given(
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "", "text/html"]),
    body=st.binary(max_size=300)
    | st.builds(lambda d: orjson.dumps(d), st.dictionaries(FIELD_NAMES, st.text(max_size=30) | st.emails()))
    | st.text(max_size=200).map(str.encode),
)
def test_any_body_gives_fields_or_problems_never_an_exception(content_type: str, body: bytes) -> None:
    fields = parse_body(content_type, body)
    if isinstance(fields, Invalid):
        assert fields.problems
        return
    result = form_events(fields, received_at=NOW, honeypot="hp_name")
    assert isinstance(result, Accepted | Invalid | Honeypot)


def test_too_many_fields_are_refused() -> None:
    body = "&".join(f"f{i}=x" for i in range(101)).encode()
    assert isinstance(parse_body("application/x-www-form-urlencoded", body), Invalid)
    assert isinstance(form_events({f"f{i}": "x" for i in range(101)}, received_at=NOW), Invalid)


def test_the_example_web_form_sends_only_fields_the_intake_accepts() -> None:
    import re
    from pathlib import Path

    from worker.settings import Settings

    html = (Path(__file__).parents[3] / "examples" / "web-form.html").read_text(encoding="utf-8")
    names = re.findall(r'<(?:input|textarea|select)[^>]*\bname="([^"]+)"', html)
    assert {"email", "first_name", "URL", "employees", "zip", "description"} <= set(names)
    honeypot = Settings().intake_honeypot
    assert honeypot in names
    filled = {name: "42" if name == "employees" else "x" for name in names} | {"email": "ada@example.com"}
    assert isinstance(form_events({**filled, honeypot: ""}, received_at=NOW, honeypot=honeypot), Accepted)
    assert isinstance(form_events(filled, received_at=NOW, honeypot=honeypot), Honeypot)
    assert 'action="http://localhost:8080/leads"' in html
    assert Settings().intake_port == 8080


def test_numbers_in_a_json_post_are_taken_as_text_where_the_contract_wants_text() -> None:
    result = accepted({"email": "a@b.example", "phone": 5551234, "company": 3.5, "employees": 12, "zip": 10115})
    lead = result.events[0].lead  # type: ignore[union-attr]
    assert (lead.phone, lead.company, lead.number_of_employees) == ("5551234", "3.5", 12)
    assert lead.custom == {"zip": 10115}
    refused = form_events({"email": "a@b.example", "phone": True}, received_at=NOW)
    assert isinstance(refused, Invalid)
    assert set(refused.problems) == {"phone"}
