"""Routing.route: a matched account's owner first, then the first matching rule, territory, else the default."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.routing.helpers import routing_of
from worker.lead.state import HISTORY_FACT, PROFILE_FIELDS
from worker.routing import AccountIndex, AccountMatch, Route, Routing, Target, normalize_company

ROUTING: dict[str, Any] = {
    "default": {"queue": "Inbound"},
    "rules": [
        {
            "id": "strategic",
            "when": {"field": "number_of_employees", "op": "gte", "value": 5000},
            "to": {"user": "ENT"},
        },
        {
            "id": "partners",
            "when": {"field": "lead_source", "op": "eq", "value": "Partner"},
            "to": {"queue": "Partners"},
        },
    ],
    "territories": [
        {"id": "dach-smb", "country": ["Germany", "Austria"], "employees": {"max": 499}, "to": {"pool": "dach"}},
        {"id": "dach", "country": ["Germany", "Austria"], "to": {"queue": "DACH-MM"}},
        {"id": "us-west", "country": "United States", "state": ["CA", "WA"], "to": {"queue": "West"}},
        {
            "id": "fintech",
            "industry": ["Banking", "Financial Services"],
            "employees": {"min": 50},
            "to": {"queue": "FS"},
        },
    ],
    "pools": [{"name": "dach", "members": [{"id": "D1"}]}],
}


def profile(**values: object) -> dict[str, object]:
    out: dict[str, object] = dict.fromkeys(PROFILE_FIELDS)
    out.update(values)
    return out


def route(routing: Routing, accounts: AccountIndex | None = None, **values: object) -> Route:
    lead = profile(**values)
    return routing.route(dict(lead), lead, accounts)


@pytest.fixture
def accounts() -> AccountIndex:
    index = AccountIndex()
    index.put(
        "ACC-1",
        {"account_id": "ACC-1", "name": "Acme Corporation", "owner_id": "OWN-1", "website": "https://www.acme.com/"},
    )
    index.put(
        "ACC-2",
        {"account_id": "ACC-2", "name": "Globex GmbH", "owner_id": "OWN-2", "domains": ["globex.de", "Globex.COM"]},
    )
    index.put("ACC-3", {"account_id": "ACC-3", "name": "Initech", "owner_id": None, "website": "initech.io"})
    index.put("ACC-4", {"account_id": "ACC-4", "name": "Gmail Fans", "owner_id": "OWN-4", "domains": ["gmail.com"]})
    return index


def test_the_owner_of_an_account_matched_by_email_domain_wins(accounts: AccountIndex) -> None:
    routing = routing_of(ROUTING)
    got = route(routing, accounts, email="jane@acme.com", number_of_employees=9000)
    assert got == Route(Target("user", "OWN-1"), "account", "ACC-1", "email_domain")
    assert got.as_dict() == {
        "via": "account",
        "ref": "ACC-1",
        "target": {"user": "OWN-1"},
        "matched_by": "email_domain",
    }


def test_subdomains_and_listed_domains_match(accounts: AccountIndex) -> None:
    assert accounts.match("bob@eu.Globex.com", None, None) == AccountMatch("ACC-2", "OWN-2", "email_domain")
    assert accounts.match(None, "http://globex.de/contact", None) == AccountMatch("ACC-2", "OWN-2", "website_domain")


def test_free_mail_is_never_matched_but_the_website_is(accounts: AccountIndex) -> None:
    assert accounts.match("someone@gmail.com", None, None) is None  # even though ACC-4 lists gmail.com
    got = route(routing_of(ROUTING), accounts, email="someone@gmail.com", website="www.acme.com")
    assert got == Route(Target("user", "OWN-1"), "account", "ACC-1", "website_domain")


def test_company_names_match_after_normalisation(accounts: AccountIndex) -> None:
    assert accounts.match("x@gmail.com", None, "The ACME Corp.") == AccountMatch("ACC-1", "OWN-1", "company_name")
    assert accounts.match(None, None, "Glöbex G.m.b.H.") == AccountMatch("ACC-2", "OWN-2", "company_name")
    assert accounts.match(None, None, "Glóbex, GmbH") == AccountMatch("ACC-2", "OWN-2", "company_name")
    assert accounts.match(None, None, "Acme Rockets") is None


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("The Acme Co., Ltd.", "acme"),
        ("ACME", "acme"),
        ("Müller GmbH & Co. KG", "muller"),
        ("Société Générale S.A.", "societe generale"),
        ("acme inc", "acme"),
        ("Acme B.V.", "acme"),
        ("The Co", "co"),
    ],
)
def test_normalize_company(name: str, normal: str) -> None:
    assert normalize_company(name) == normal


def test_an_account_without_owner_goes_on_to_the_rules_which_see_the_account_facts(accounts: AccountIndex) -> None:
    routing = routing_of(
        {
            "default": {"queue": "Inbound"},
            "rules": [
                {
                    "id": "owned",
                    "when": {"field": "account.id", "op": "eq", "value": "ACC-3"},
                    "to": {"queue": "Initech"},
                },
                {
                    "id": "known",
                    "when": {"field": "account.matched", "op": "eq", "value": True},
                    "to": {"queue": "Known"},
                },
            ],
        }
    )
    assert route(routing, accounts, email="a@initech.io") == Route(Target("queue", "Initech"), "rule", "owned")
    assert route(routing, accounts, email="a@other.io") == Route(Target("queue", "Inbound"), "default", None)
    assert route(routing, None, email="a@initech.io") == Route(Target("queue", "Inbound"), "default", None)


def test_with_matching_off_the_owner_does_not_win(accounts: AccountIndex) -> None:
    routing = routing_of({**ROUTING, "accounts": {"match": False}})
    assert route(routing, accounts, email="jane@acme.com").via == "default"


def test_deleted_and_replaced_accounts_stop_matching(accounts: AccountIndex) -> None:
    accounts.put("ACC-1", None)
    assert accounts.match("jane@acme.com", None, "Acme") is None
    accounts.put("ACC-2", {"account_id": "ACC-2", "name": "Globex", "owner_id": "OWN-9", "website": "globex.net"})
    assert accounts.match("a@globex.de", None, None) is None
    assert accounts.match("a@globex.net", None, None) == AccountMatch("ACC-2", "OWN-9", "email_domain")
    assert len(accounts) == 3


def test_the_smallest_account_id_wins_a_shared_domain_whatever_the_order() -> None:
    first, second = AccountIndex(), AccountIndex()
    for index, order in ((first, ("B", "A")), (second, ("A", "B"))):
        for account_id in order:
            index.put(
                account_id,
                {"account_id": account_id, "name": "Same", "owner_id": f"O-{account_id}", "website": "same.com"},
            )
        assert index.match("x@same.com", None, None) == AccountMatch("A", "O-A", "email_domain")


def test_the_first_matching_rule_wins() -> None:
    routing = routing_of(ROUTING)
    got = route(routing, None, number_of_employees=9000, lead_source="Partner", country="Germany")
    assert got == Route(Target("user", "ENT"), "rule", "strategic")
    assert got.as_dict() == {"via": "rule", "ref": "strategic", "target": {"user": "ENT"}}
    assert route(routing, None, lead_source="Partner").ref == "partners"


@pytest.mark.parametrize(
    ("values", "territory"),
    [
        ({"country": "germany", "number_of_employees": 120}, "dach-smb"),
        ({"country": " Austria ", "number_of_employees": 499}, "dach-smb"),
        ({"country": "Germany", "number_of_employees": 500}, "dach"),
        ({"country": "Germany"}, "dach"),  # no size: the band does not match, the next territory does
        ({"country": "United States", "state": "ca"}, "us-west"),
        ({"country": "United States", "state": "NY"}, None),
        ({"industry": "banking", "number_of_employees": 50}, "fintech"),
        ({"industry": "banking", "number_of_employees": 49}, None),
        ({}, None),
    ],
)
def test_territories_by_country_state_industry_and_size(values: dict[str, object], territory: str | None) -> None:
    got = route(routing_of(ROUTING), None, **values)
    if territory is None:
        assert got == Route(Target("queue", "Inbound"), "default", None)
        assert got.as_dict() == {"via": "default", "ref": None, "target": {"queue": "Inbound"}}
    else:
        assert (got.via, got.ref) == ("territory", territory)
    if territory == "dach-smb":
        assert got.target == Target("pool", "dach")


def test_rules_reading_derived_facts_compute_them_when_missing() -> None:
    routing = routing_of(
        {
            "default": {"queue": "Inbound"},
            "rules": [
                {
                    "id": "busy",
                    "when": {"field": "activity.web_visit.count_in_days(7)", "op": "gte", "value": 2},
                    "to": {"queue": "Busy"},
                }
            ],
        }
    )
    day = 86400.0
    now = 100 * day
    facts: dict[str, object] = {"now": now, HISTORY_FACT: {"web_visit": [[99, 1], [100, 1]]}}
    assert routing.route(facts, profile(), None).ref == "busy"
    facts[HISTORY_FACT] = {"web_visit": [[80, 5]]}
    assert routing.route(facts, profile(), None).via == "default"
