"""Duplicate rules: normalisation, match keys, the ``duplicates:`` section's errors, and the match step's answers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.cli import main
from worker.exceptions import Problem, RulesetError
from worker.rules import parse_ruleset
from worker.rules.duplicates import (
    DuplicateRules,
    apply_answer,
    claim_keys,
    email_domain,
    held,
    match_batch,
    normalise_company,
    normalise_email,
    normalise_name,
    normalise_phone,
)

BASE = 'version: "1"\n'


def problems(section: str) -> list[Problem]:
    with pytest.raises(RulesetError) as info:
        parse_ruleset(BASE + textwrap.dedent(section), "rules.yaml")
    return list(info.value.problems)


RULES = DuplicateRules((("email",), ("email_domain", "name", "company")))


# --- normalisation -------------------------------------------------------------------------------------------------


def test_emails_are_trimmed_and_lower_cased_and_must_have_a_local_part_and_a_domain() -> None:
    assert normalise_email("  Ada.Osei@Northwind.Example. ") == "ada.osei@northwind.example"
    assert email_domain("Ada@Northwind.EXAMPLE") == "northwind.example"
    for bad in ("", "ada", "@x.com", "ada@", "ada @x.com", None, 3):
        assert normalise_email(bad) is None, bad


def test_names_and_companies_fold_case_accents_punctuation_and_legal_suffixes() -> None:
    assert normalise_name("  Zoë ", "O'Neil") == normalise_name("zoe", "o neil") == "zoe o neil"
    assert normalise_name("Ada", "") is None
    assert normalise_name(None, "Osei") == "osei"
    assert normalise_company("ACME, Inc.") == normalise_company("Acme") == normalise_company("acme  gmbh") == "acme"
    assert normalise_company("Northwind Logistics Ltd") == "northwind logistics"
    assert normalise_company("Inc") == "inc"  # a company called only a suffix keeps its name
    assert normalise_company(" ,. ") is None
    assert normalise_phone("+49 (30) 1234-567") == "49301234567"
    assert normalise_phone("12-34") is None


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(_text, _text)
def test_normalising_twice_changes_nothing(first: str, last: str) -> None:
    name = normalise_name(first, last)
    if name is not None:
        assert normalise_name(None, name) == name
    company = normalise_company(last)
    if company is not None:
        assert normalise_company(company) == company
    email = normalise_email(f"{first}@{last}")
    if email is not None:
        assert normalise_email(email) == email
        assert email == email.strip().lower()


@given(st.emails(), st.sampled_from([str.upper, str.lower, lambda s: f"  {s} ", lambda s: s]))
def test_the_same_email_written_differently_gives_the_same_key(email: str, spell: object) -> None:
    written = spell(email)  # type: ignore[operator]
    assert RULES.keys({"email": written}) == RULES.keys({"email": email})
    (key,) = RULES.keys({"email": email})
    # a digest, not the address: 32 hex digits whatever the address's length (a check that the address's
    # local part is not in the key fails by chance on short ones: "30a" is in one hex digest in ~1,000)
    assert len(key) == 32
    assert set(key) <= set("0123456789abcdef")


def test_keys_need_every_part_of_a_rule_and_differ_between_people() -> None:
    ada = {"email": "ada@northwind.example", "first_name": "Ada", "last_name": "Osei", "company": "Northwind Inc"}
    assert len(RULES.keys(ada)) == 2
    assert len(RULES.keys({**ada, "company": None})) == 1  # no company: only the email rule
    same_person = {**ada, "email": "a.osei@northwind.example", "company": "NORTHWIND"}
    assert RULES.keys(same_person)[1] == RULES.keys(ada)[1]
    assert RULES.keys(same_person)[0] != RULES.keys(ada)[0]
    other = {**ada, "first_name": "Bea"}
    assert RULES.keys(other)[1] != RULES.keys(ada)[1]


def test_free_mail_domains_do_not_match_on_domain_name_and_company_unless_asked() -> None:
    gmail = {"email": "ada@gmail.com", "first_name": "Ada", "last_name": "Osei", "company": "Northwind"}
    assert len(RULES.keys(gmail)) == 1  # the email rule only
    assert len(DuplicateRules(RULES.match, free_email="match").keys(gmail)) == 2


# --- claims and answers in a lead's state --------------------------------------------------------------------------


def test_a_lead_is_held_until_its_claims_are_answered_and_a_duplicate_stays_held() -> None:
    state: dict[str, object] = {"lead_id": "A", "email": "ada@x.example", "converted": False}
    (key,) = claim_keys(DuplicateRules((("email",),)), state)
    assert held(state)
    assert claim_keys(DuplicateRules((("email",),)), state) == []  # claimed once
    assert apply_answer(state, "0" * 32, "A", 0) is None  # not a claim of this lead: ignored
    assert apply_answer(state, key, "A", 3) is False
    assert not held(state)
    assert apply_answer(state, key, "B", 3) is None  # answered already

    dup: dict[str, object] = {"lead_id": "B", "email": "ADA@x.example", "converted": False}
    (same,) = claim_keys(DuplicateRules((("email",),)), dup)
    assert same == key
    assert apply_answer(dup, key, "A", 3) is True
    assert dup["duplicate_of"] == "A"
    assert dup["survivor_partition"] == 3
    assert held(dup)


# --- the match step -------------------------------------------------------------------------------------------------


def _claim(key: str, lead_id: str, partition: int) -> tuple[bytes, bytes]:
    value = {"claim": key, "lead_id": lead_id, "partition": partition, "occurred_at": "2026-11-02T09:00:00+00:00"}
    return key.encode(), orjson.dumps(value)


def test_the_first_claimant_survives_and_a_claim_made_again_gets_the_same_answer() -> None:
    key = "a" * 32
    table: dict[str, bytes] = {}
    out = match_batch([_claim(key, "A", 1), _claim(key, "B", 4), _claim(key, "A", 1)], table.get, 8)
    answers = [(p, k, orjson.loads(v)) for p, k, v in out.answers]
    assert [(p, k, a["survivor_id"], a["survivor_partition"]) for p, k, a in answers] == [
        (1, b"A", "A", 1),
        (4, b"B", "A", 1),
        (1, b"A", "A", 1),
    ]
    assert out.duplicates == 1
    assert answers[1][2]["event_id"] == f"match-{key}"
    stored = out.entries[key]
    assert stored is not None
    table[key] = stored
    again = match_batch([_claim(key, "B", 4)], table.get, 8)  # after a restart: from the table
    assert orjson.loads(again.answers[0][2])["survivor_id"] == "A"


def test_a_release_by_the_holder_forgets_the_key_and_one_by_another_lead_does_not() -> None:
    key = "b" * 32
    table = {key: orjson.dumps({"lead_id": "A", "partition": 0})}
    release = orjson.dumps({"release": key, "lead_id": "B"})
    assert match_batch([(key.encode(), release)], table.get, 8).entries == {}
    release = orjson.dumps({"release": key, "lead_id": "A"})
    out = match_batch([(key.encode(), release), _claim(key, "C", 2)], table.get, 8)
    assert orjson.loads(out.answers[0][2])["survivor_id"] == "C"


@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["L1", "L2", "L3"])), max_size=30), st.integers(1, 5))
def test_every_claim_of_a_key_is_answered_with_its_first_claimant_however_the_batches_fall(
    claims: list[tuple[str, str]], cut: int
) -> None:
    requests = [_claim(k * 32, lead, int(lead[1])) for k, lead in claims]
    table: dict[str, bytes] = {}
    answers = []
    for start in range(0, len(requests), cut):  # the same claims in batches of ``cut``, the table between them
        out = match_batch(requests[start : start + cut], table.get, 4)
        table.update({k: v for k, v in out.entries.items() if v is not None})
        answers += [orjson.loads(v) for _, _, v in out.answers]
    first: dict[str, str] = {}
    for k, lead in claims:
        first.setdefault(k * 32, lead)
    assert [(a["lead_id"], a["survivor_id"]) for a in answers] == [(lead, first[k * 32]) for k, lead in claims]
    assert all(a["survivor_partition"] == int(a["survivor_id"][1]) for a in answers)


def test_a_claim_naming_a_partition_leads_does_not_have_is_refused() -> None:
    out = match_batch([_claim("d" * 32, "A", 8)], {}.get, 8)
    assert out.answers == []
    assert "0 to 7" in str(out.failures[0][1])


def test_records_that_are_not_match_requests_are_refused_with_a_reason() -> None:
    out = match_batch([(b"k", b"not json"), (b"c" * 32, orjson.dumps({"claim": "x", "lead_id": "A"}))], {}.get, 8)
    assert [i for i, _ in out.failures] == [0, 1]
    assert all(e.reason == "schema_violation" for _, e in out.failures)
    assert "match request" in str(out.failures[0][1])


# --- the section ----------------------------------------------------------------------------------------------------


def test_a_valid_section_compiles() -> None:
    ruleset = parse_ruleset(BASE + "duplicates:\n  match:\n    - [email]\n    - [email_domain, name, company]\n")
    assert ruleset.duplicates == RULES


def test_an_unknown_part_is_named_with_its_line_and_a_suggestion() -> None:
    (problem,) = problems("duplicates:\n  match:\n    - [emial]\n")
    assert problem.line == 4
    assert "unknown match part 'emial'" in str(problem)
    assert problem.suggestion == "email"


def test_a_rule_that_would_merge_a_whole_company_is_refused_with_the_fix() -> None:
    (problem,) = problems("duplicates:\n  match:\n    - [email_domain, company]\n")
    assert "would merge different people" in str(problem)
    assert "e.g. [email_domain, name, company]" in str(problem)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("duplicates:\n  match: []\n", "match"),
        ("duplicates:\n  match:\n    - email\n", "non-empty list of parts"),
        ("duplicates:\n  match:\n    - [email, email]\n", "listed twice in one rule"),
        ("duplicates:\n  match:\n    - [email]\n    - [email]\n", "listed twice"),
        ("duplicates:\n  match:\n    - [email]\n  survivor: last\n", "survivor"),
        ("duplicates:\n  match:\n    - [email]\n  survivour: first\n", "survivour"),
        ("duplicates: yes\n", "'duplicates' must be a mapping"),
    ],
)
def test_broken_sections_are_reported(section: str, expected: str) -> None:
    found = problems(section)
    assert found
    assert any(expected in str(p) for p in found), found


def test_rules_check_reports_the_sections_problems_with_lines_and_fixes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(BASE + "duplicates:\n  match:\n    - [emial]\n    - [email_domain, company]\n  survivor: last\n")
    assert main(["rules", "check", str(path)]) == 2
    out = capsys.readouterr().out
    assert "dup.yaml:4: duplicates.match[0][0]: unknown match part 'emial'" in out
    assert "(did you mean 'email'?)" in out
    assert "dup.yaml:5: duplicates.match[1]: match rule ['email_domain', 'company'] would merge" in out
    assert "dup.yaml:6: duplicates.survivor: input should be 'first', got 'last'" in out
    path.write_text(BASE + "duplicates:\n  match:\n    - [email]\n")
    assert main(["rules", "check", str(path)]) == 0
