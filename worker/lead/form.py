"""Web-to-lead: a form post (ours or Salesforce's field names) turned into contract events, or told what is wrong.

Pure: no network, no clock (the caller passes the time it received the post). ``leadflow intake`` is the thin HTTP
shell around it (worker/tools/intake.py).

- The lead id is derived from the normalised email (``web-`` and 32 hex digits of its SHA-256), so the same person
  posting twice is one lead.
- The event ids are derived from the lead id, the UTC day and the submitted fields, so a double submit (the same
  form, sent again the same day) produces the same events, which the worker applies once (a replay). The same
  person sending the form again another day, or with other answers, is a new ``form_submit``.
- Everything produced has been validated against the contract (``LeadUpserted``, ``LeadActivity``); a form that
  does not fit gets a problem per field, named as the form named it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError

from worker.lead.events import LeadActivity, LeadFields, LeadUpserted

__all__ = [
    "FIELD_ALIASES",
    "IGNORED_FIELDS",
    "Accepted",
    "Honeypot",
    "Invalid",
    "form_events",
    "lead_id_for",
    "parse_body",
]

FIELD_ALIASES: Mapping[str, str] = {
    # ours (the contract's names) and Salesforce web-to-lead's, which are mostly the same
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "company": "company",
    "phone": "phone",
    "title": "title",
    "lead_source": "lead_source",
    "rating": "rating",
    "industry": "industry",
    "city": "city",
    "state": "state",
    "country": "country",
    "website": "website",
    "URL": "website",
    "url": "website",
    "employees": "number_of_employees",
    "number_of_employees": "number_of_employees",
    "revenue": "annual_revenue",
    "annual_revenue": "annual_revenue",
}
"""Form field name -> contract field of ``LeadFields``."""

CUSTOM_FIELDS = ("zip", "street", "description", "mobile", "fax", "salutation")
"""Salesforce web-to-lead fields with no contract field of their own: kept in ``custom`` under the same name."""

IGNORED_FIELDS = frozenset(
    {"oid", "orgid", "retURL", "debug", "debugEmail", "encoding", "recordType", "submit", "captcha_settings"}
)
"""Salesforce's control fields and a submit button: accepted and dropped."""

FORM_FIELD = "form"
"""An optional field naming the form (e.g. 'pricing-page'): the ``detail`` of the ``form_submit`` activity."""

MAX_FIELDS = 100
_CUSTOM_NAME = re.compile(r"^(?:00N[A-Za-z0-9]{12,15}|custom[._][A-Za-z0-9_]{1,90})$")
"""Salesforce custom field ids (``00N...``) and ``custom.NAME`` / ``custom_NAME``: kept in ``custom``."""
_TEXT_FIELDS = frozenset(FIELD_ALIASES.values()) - {"number_of_employees", "annual_revenue"}
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+$")


@dataclass(frozen=True)
class Accepted:
    """A valid form: the events to produce, in order, all keyed by ``lead_id``."""

    lead_id: str
    events: tuple[LeadUpserted | LeadActivity, ...]

    def records(self) -> list[tuple[bytes, bytes]]:
        """(key, value) of each event, as the leads topic takes them."""
        key = self.lead_id.encode()
        return [(key, orjson.dumps(e.model_dump(mode="json", exclude_none=True))) for e in self.events]


@dataclass(frozen=True)
class Invalid:
    """A form that does not fit: a problem per form field (``""`` for the body as a whole)."""

    problems: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Honeypot:
    """A bot filled the hidden field: answer as if accepted, produce nothing."""

    lead_id: str


def lead_id_for(email: str) -> str:
    """The lead id of a web lead: from its email, trimmed and lower-cased (the same person is one lead)."""
    return "web-" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def parse_body(content_type: str, body: bytes) -> dict[str, Any] | Invalid:
    """The fields of a form post: ``application/x-www-form-urlencoded`` or ``application/json`` (an object)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return Invalid({"": f"the body is not JSON ({exc}); send one JSON object of form fields"})
        if not isinstance(data, dict):
            return Invalid({"": f"the JSON body is a {type(data).__name__}; send one object of form fields"})
        return data
    if kind in ("application/x-www-form-urlencoded", ""):
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
        except UnicodeDecodeError:
            return Invalid({"": 'the form body is not UTF-8; add accept-charset="UTF-8" to the <form>'})
        except ValueError:  # more than max_num_fields
            return Invalid({"": f"more than {MAX_FIELDS} fields; a form may send at most {MAX_FIELDS}"})
        fields: dict[str, Any] = {}
        for name, value in pairs:
            if name in fields:
                return Invalid({name: "given more than once; send each field once"})
            fields[name] = value
        return fields
    return Invalid(
        {"": f"content type {kind!r} is not accepted; send application/x-www-form-urlencoded or application/json"}
    )


def _day_digest(lead_id: str, day: dt.date, fields: Mapping[str, object]) -> str:
    canonical = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    h = hashlib.sha256(f"{lead_id}\x1f{day.isoformat()}\x1f".encode() + canonical)
    return h.hexdigest()[:24]


def form_events(  # one pass over the fields, one branch per kind of field
    fields: Mapping[str, Any], *, received_at: dt.datetime, honeypot: str | None = None
) -> Accepted | Invalid | Honeypot:
    """The events of one form post, or every problem with it; never raises on any input."""
    problems: dict[str, str] = {}
    if len(fields) > MAX_FIELDS:
        return Invalid({"": f"{len(fields)} fields; a form may send at most {MAX_FIELDS}"})
    if honeypot is not None and honeypot in fields and fields[honeypot] not in ("", None):
        email = fields.get("email")
        return Honeypot(lead_id_for(email if isinstance(email, str) else repr(sorted(map(str, fields)))))
    lead: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    origin: dict[str, str] = {}  # contract field -> the form field it came from (to name it in a problem)
    detail: str | None = None
    for name, value in fields.items():
        if not isinstance(name, str):
            continue  # JSON keys are always strings; a mapping from elsewhere may not be
        if value is not None and not isinstance(value, str | int | float | bool):
            problems[name] = f"a {type(value).__name__}; a form field is a text, a number or true/false"
            continue
        if isinstance(value, str):
            value = value.strip()
        if value in ("", None) or name in IGNORED_FIELDS or name == honeypot:
            continue  # an empty field leaves the lead's value as it was
        if name == FORM_FIELD:
            detail = str(value)
        elif name in FIELD_ALIASES:
            target = FIELD_ALIASES[name]
            if target in origin:
                problems[name] = f"gives {target} again (also given as {origin[target]!r}); send one of them"
                continue
            origin[target] = name
            if target in _TEXT_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)  # a JSON post may send a phone number or a zip code as a number
            lead[target] = value
        elif name in CUSTOM_FIELDS or _CUSTOM_NAME.match(name):
            key = name.removeprefix("custom.").removeprefix("custom_") if name.startswith("custom") else name
            custom[key] = value
            origin[f"custom.{key}"] = name
        else:
            problems[name] = (
                "unknown field; use a lead field (first_name, last_name, email, company, phone, title, lead_source,"
                " industry, city, state, country, zip, URL, employees, revenue, description...), custom.NAME or a"
                " Salesforce custom field id (00N...)"
            )
    email = lead.get("email")
    if email is None:
        problems.setdefault("email", "missing; a web lead needs an email address")
    elif not isinstance(email, str) or not _EMAIL.match(email):
        problems[origin["email"]] = f"{str(email)[:80]!r} is not an email address (name@example.com)"
    if custom:
        lead["custom"] = custom
    try:
        LeadFields.model_validate(lead)
    except ValidationError as exc:
        for name, problem in _problems(exc, origin, prefix=()).items():
            problems.setdefault(name, problem)
    if problems or not isinstance(email, str):
        return Invalid(problems)
    lead["email"] = email.lower()
    lead_id = lead_id_for(email)
    digest = _day_digest(lead_id, received_at.astimezone(dt.UTC).date(), {"lead": lead, "form": detail})
    occurred_at = received_at.astimezone(dt.UTC).isoformat()
    try:
        upsert = LeadUpserted.model_validate(
            {
                "event_id": f"form-{digest}-lead",
                "event_type": "lead.upserted",
                "occurred_at": occurred_at,
                "lead_id": lead_id,
                "lead": lead,
            }
        )
        submit = LeadActivity.model_validate(
            {
                "event_id": f"form-{digest}-submit",
                "event_type": "lead.activity",
                "occurred_at": occurred_at,
                "lead_id": lead_id,
                "activity": {"type": "form_submit", "detail": detail},
            }
        )
    except ValidationError as exc:
        return Invalid(_problems(exc, origin, prefix=("lead",)))
    return Accepted(lead_id, (upsert, submit))


def _problems(exc: ValidationError, origin: Mapping[str, str], prefix: tuple[str, ...]) -> dict[str, str]:
    """Each contract error under the form field it came from (``prefix``: where the lead fields are)."""
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"]]
        inner = loc[len(prefix) :]
        if loc[: len(prefix)] == list(prefix) and inner:
            key = f"custom.{inner[1]}" if inner[0] == "custom" and len(inner) > 1 else inner[0]
            name = origin.get(key, key)
        elif loc[:2] == ["activity", "detail"]:
            name = FORM_FIELD
        else:
            name = ".".join(loc) or ""
        problems.setdefault(name, error["msg"])
    return problems
