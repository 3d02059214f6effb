"""Duplicate rules (the ruleset's ``duplicates:`` section): when two leads are the same person, and their match keys.

A match rule is a list of parts (``[email]``, ``[email_domain, name, company]``); a lead's value of each part is
normalised (:func:`normalise_email`, :func:`normalise_name`, :func:`normalise_company`, ...) and the parts of one
rule together give one **match key**: the SHA-256 of the rule's part names and values, cut to 32 hex digits. Two
leads with the same key are the same person. The key is what travels on the internal match topic and is stored in
the match table, so neither holds a plain email; it is still personal data (a known email's key can be computed),
listed in docs/PRIVACY.md and released when the lead is erased.

Pure: no broker, no clock. The shell's match step (:mod:`worker.stream._match_stage`) keeps which lead claimed each
key first; :mod:`worker.core` holds a lead's conversion until its keys are answered.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson
from pydantic import Field

from worker.conditions import FREE_EMAIL_DOMAINS, ConditionContext, Loc, StrictDoc, describe, suggest
from worker.exceptions import EventError
from worker.lead.events import LeadActivity
from worker.lead.times import iso_utc

__all__ = [
    "DUPLICATE_OF",
    "MATCH",
    "MATCH_PARTS",
    "PENDING",
    "SURVIVOR_PARTITION",
    "DuplicateRules",
    "DuplicatesDoc",
    "MatchOut",
    "apply_answer",
    "claim_keys",
    "claimed_keys",
    "compile_duplicates",
    "email_domain",
    "forwarded_activity",
    "held",
    "match_batch",
    "match_key",
    "merged_engagement",
    "normalise_company",
    "normalise_email",
    "normalise_name",
    "normalise_phone",
]

_KEY_HEX = 32
_MAX_PARTS = 4
_MAX_RULES = 8

LEGAL_SUFFIXES = frozenset(
    {
        *("inc", "incorporated", "ltd", "limited", "llc", "llp", "lp", "plc", "corp", "corporation", "co"),
        *("company", "gmbh", "ag", "kg", "mbh", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "oy", "ab", "as"),
        *("aps", "pty", "pte", "kk"),
    }
)
"""Words dropped from the end of a company name (``Acme Inc.``, ``ACME GmbH`` and ``acme`` are one company)."""

_NOT_WORD = re.compile(r"[\W_]+")


def _folded(text: str) -> str:
    """Lower case, accents removed, punctuation as spaces, spaces collapsed: ``  Zoë  O'Neil`` -> ``zoe o neil``."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())  # both ways round:
    # a compatibility form can decompose to capitals (a mathematical bold A is an A), and case folding can compose
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NOT_WORD.sub(" ", plain).split())


def normalise_email(email: object) -> str | None:
    """The address trimmed and lower-cased; None when it is not ``local@domain``."""
    if not isinstance(email, str):
        return None
    address = email.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain.strip(".") or any(c.isspace() for c in address):
        return None
    return f"{local}@{domain.strip('.')}"


def email_domain(email: object) -> str | None:
    """The domain of a valid address (``Ada@Northwind.Example.`` -> ``northwind.example``), else None."""
    address = normalise_email(email)
    return None if address is None else address.rpartition("@")[2]


def normalise_name(first_name: object, last_name: object) -> str | None:
    """First and last name folded (see :func:`_folded`); None without a last name."""
    last = _folded(last_name) if isinstance(last_name, str) else ""
    if not last:
        return None
    first = _folded(first_name) if isinstance(first_name, str) else ""
    return f"{first} {last}".strip()


def normalise_company(company: object) -> str | None:
    """The company folded, legal suffixes dropped from its end (``The ACME, Inc.`` -> ``the acme``); None if empty."""
    if not isinstance(company, str):
        return None
    words = _folded(company).split()
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words) or None


def normalise_phone(phone: object) -> str | None:
    """The digits of a phone number (at least 7 of them, else None): ``+49 (30) 1234-567`` -> ``49301234567``."""
    if not isinstance(phone, str):
        return None
    digits = "".join(c for c in phone if c.isdigit())
    return digits if len(digits) >= 7 else None


_Part = Callable[[Mapping[str, Any]], "str | None"]
MATCH_PARTS: Mapping[str, _Part] = {
    "email": lambda s: normalise_email(s.get("email")),
    "email_domain": lambda s: email_domain(s.get("email")),
    "name": lambda s: normalise_name(s.get("first_name"), s.get("last_name")),
    "last_name": lambda s: normalise_name(None, s.get("last_name")),
    "company": lambda s: normalise_company(s.get("company")),
    "phone": lambda s: normalise_phone(s.get("phone")),
}
"""What a match rule can compare: the part's name → its normalised value in a lead's state (None: not known)."""

_IDENTIFYING = frozenset({"email", "phone"})
"""Parts that identify a person on their own; any other rule needs a name and one more part."""


def match_key(parts: tuple[str, ...], values: tuple[str, ...]) -> str:
    """The key of one rule's normalised values: 32 hex digits of the SHA-256 of the part names and values."""
    text = "\x1f".join(f"{p}={v}" for p, v in zip(parts, values, strict=True))
    return hashlib.sha256(text.encode()).hexdigest()[:_KEY_HEX]


@dataclass(frozen=True, slots=True)
class DuplicateRules:
    """The compiled ``duplicates:`` section."""

    match: tuple[tuple[str, ...], ...]
    survivor: Literal["first"] = "first"
    free_email: Literal["skip", "match"] = "skip"
    """Whether a rule with ``email_domain`` (and no ``email``) matches leads of a free-mail domain (gmail.com...)."""

    def keys(self, state: Mapping[str, Any]) -> list[str]:
        """The lead's match keys, one per rule whose every part is known (in the rules' order)."""
        keys = []
        for parts in self.match:
            values = []
            for part in parts:
                value = MATCH_PARTS[part](state)
                if value is None:
                    break
                if part == "email_domain" and self.free_email == "skip" and value in FREE_EMAIL_DOMAINS:
                    break
                values.append(value)
            else:
                keys.append(match_key(parts, tuple(values)))
        return keys


class DuplicatesDoc(StrictDoc):
    """The ``duplicates:`` section."""

    match: list[Any] = Field(min_length=1, max_length=_MAX_RULES)
    survivor: Literal["first"] = "first"
    free_email: Literal["skip", "match"] = "skip"


def compile_duplicates(raw: object, ctx: ConditionContext) -> DuplicateRules | None:
    """The ``duplicates:`` section compiled; None (with every problem recorded in ``ctx``) when it is broken."""
    loc: Loc = ("duplicates",)
    doc, _ = ctx.validate(DuplicatesDoc, raw, loc, "'duplicates'", placeholders={"match": [["email"]]})
    if doc is None:
        return None
    rules: list[tuple[str, ...]] = []
    broken = False
    for i, item in enumerate(doc.match):
        parts = _rule(item, (*loc, "match", i), ctx)
        if parts is None:
            broken = True
        elif parts in rules:
            ctx.add((*loc, "match", i), f"match rule {list(parts)!r} is listed twice")
            broken = True
        else:
            rules.append(parts)
    if broken:
        return None
    return DuplicateRules(tuple(rules), doc.survivor, doc.free_email)


def _rule(item: object, loc: Loc, ctx: ConditionContext) -> tuple[str, ...] | None:
    example = "e.g. [email] or [email_domain, name, company]"
    if not isinstance(item, list) or not item:
        ctx.add(loc, f"a match rule is a non-empty list of parts ({example}), got {describe(item)}")
        return None
    if len(item) > _MAX_PARTS:
        ctx.add(loc, f"a match rule has at most {_MAX_PARTS} parts, got {len(item)}")
        return None
    known = ", ".join(MATCH_PARTS)
    for j, part in enumerate(item):
        if part not in MATCH_PARTS:
            hint = suggest(part, MATCH_PARTS)
            ctx.add((*loc, j), f"unknown match part {part!r}; parts are: {known}", None, hint)
            return None
        if part in item[:j]:
            ctx.add((*loc, j), f"match part {part!r} is listed twice in one rule")
            return None
    parts = tuple(str(p) for p in item)
    named = "name" in parts or "last_name" in parts
    if not _IDENTIFYING.intersection(parts) and not (named and len(parts) > 1):
        msg = (
            f"match rule {list(parts)!r} would merge different people (everyone at one company or domain); a rule "
            "needs 'email' or 'phone', or a name ('name' or 'last_name') and another part, e.g. [email_domain, name,"
            " company]"
        )
        ctx.add(loc, msg)
        return None
    return parts


# --- a lead's claims, as its state keeps them ----------------------------------------------------------------------

MATCH = "match"
"""The state's map of the lead's match keys → ``"?"`` (claimed, unanswered), ``""`` (it survives), or the lead id
of the survivor that claimed the key first."""
DUPLICATE_OF = "duplicate_of"
"""The state's survivor lead id once the lead is a duplicate (and ``SURVIVOR_PARTITION``, its partition of leads)."""
SURVIVOR_PARTITION = "survivor_partition"
PENDING = "?"


def claim_keys(rules: DuplicateRules, state: dict[str, Any]) -> list[str]:
    """The lead's match keys not claimed yet, now noted as claimed and unanswered in ``state``."""
    keys = rules.keys(state)
    claimed: dict[str, str] | None = state.get(MATCH)
    new = [k for k in keys if claimed is None or k not in claimed]
    if new:
        if claimed is None:
            claimed = state[MATCH] = {}
        for key in new:
            claimed[key] = PENDING
    return new


def held(state: Mapping[str, Any]) -> bool:
    """Whether the lead may not convert now: it is a duplicate, or one of its claims is unanswered."""
    if state.get(DUPLICATE_OF) is not None:
        return True
    claimed: Mapping[str, str] | None = state.get(MATCH)
    return claimed is not None and PENDING in claimed.values()


def apply_answer(state: dict[str, Any], key: str, survivor_id: str, survivor_partition: int) -> bool | None:
    """Apply the match step's answer to the lead's claim of ``key``.

    None when the lead has no unanswered claim of ``key`` (a stale or forged answer: the caller ignores it); True
    when the answer makes the lead a duplicate of ``survivor_id``; False otherwise (it survives, or it was a
    duplicate or converted already: a converted lead is never merged, see docs/RULES.md).
    """
    claimed = state.get(MATCH)
    if not claimed or claimed.get(key) != PENDING:
        return None
    if survivor_id == state["lead_id"]:
        claimed[key] = ""
        return False
    claimed[key] = survivor_id
    if state.get(DUPLICATE_OF) is not None or state.get("converted"):
        return False
    state[DUPLICATE_OF] = survivor_id
    state[SURVIVOR_PARTITION] = survivor_partition
    return True


def claimed_keys(state: Mapping[str, Any] | None) -> list[str]:
    """Every match key the lead claimed (what its erasure releases)."""
    return list((state or {}).get(MATCH) or ())


def _event_id(prefix: str, *parts: str) -> str:
    return prefix + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


def merged_engagement(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The duplicate's engagement so far as ``lead.activity`` events of its survivor: one per activity type with
    the type's count, at the type's last time; ids derived from the two leads and the type (a replay is one)."""
    survivor, lead_id = state[DUPLICATE_OF], state["lead_id"]
    events = []
    for name, count in state.items():
        if not (name.startswith("activity.") and name.endswith(".count")) or not count:
            continue
        kind = name[len("activity.") : -len(".count")]
        events.append(
            {
                "schema_version": 1,
                "event_type": "lead.activity",
                "event_id": _event_id("merge-", lead_id, kind),
                "occurred_at": iso_utc(state.get(f"activity.{kind}.last_at") or state["updated_at"]),
                "lead_id": survivor,
                "activity": {"type": kind, "count": count, "detail": f"merged from lead {lead_id}"[:2000]},
            }
        )
    return events


def forwarded_activity(state: Mapping[str, Any], event: LeadActivity) -> dict[str, Any]:
    """A duplicate's ``lead.activity`` event as its survivor's (an id derived from the lead and the event's)."""
    raw: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    raw["event_id"] = _event_id("fwd-", state["lead_id"], event.event_id)
    raw["lead_id"] = state[DUPLICATE_OF]
    return raw


# --- the match step: who claimed each key first ---------------------------------------------------------------------


class _Request(NamedTuple):
    key: str
    lead_id: str
    partition: int | None  # None: a release
    occurred_at: str


class MatchOut(NamedTuple):
    """What a batch of match requests gives: the answers, the table's changes, the requests refused."""

    answers: list[tuple[int, bytes, bytes]]
    """(partition of leads, lead id, the ``lead.matched`` JSON): on the partition that holds the lead's records."""
    entries: dict[str, bytes | None]
    """Match key → the lead that holds it (JSON), None to delete (a release by the holder)."""
    failures: list[tuple[int, EventError]]
    """The index of each request that is not one, and why."""
    duplicates: int
    """Claims answered with another lead (this one is a duplicate)."""


def _request(key: bytes | None, value: bytes | None, partitions: int) -> _Request:
    try:
        raw = orjson.loads(value or b"")
        text = (key or b"").decode()
        lead_id = raw["lead_id"]
        if "release" in raw:
            if raw["release"] != text or not isinstance(lead_id, str):
                raise ValueError
            return _Request(text, lead_id, None, "")
        partition, occurred_at = raw["partition"], raw["occurred_at"]
        if raw["claim"] != text or not isinstance(lead_id, str) or partition.__class__ is not int:
            raise ValueError
        if not 0 <= partition < partitions:
            raise ValueError
        if not isinstance(occurred_at, str):
            raise ValueError
        return _Request(text, lead_id, partition, occurred_at)
    except (ValueError, KeyError, TypeError, AttributeError):
        msg = (
            "not a match request: expected a JSON object {claim, lead_id, partition, occurred_at} (a partition of"
            f" leads, 0 to {partitions - 1}) or {{release, lead_id}}, keyed by its match key (the match topic is"
            " internal: only the worker writes it)"
        )
        raise EventError(msg, reason="schema_violation") from None


def match_batch(
    requests: Sequence[tuple[bytes | None, bytes | None]], load: Callable[[str], bytes | None], partitions: int
) -> MatchOut:
    """Answer claims of match keys in order: the first lead to claim a key holds it (``survivor: first``); each
    claim is answered with the holder, so a claim made again (a replay, a restart) gets the same answer. A release
    (the holder was erased) forgets the key; another lead's release changes nothing. ``partitions``: of leads (a
    claim naming another partition is refused, since its answer could never be written)."""
    answers: list[tuple[int, bytes, bytes]] = []
    entries: dict[str, bytes | None] = {}
    failures: list[tuple[int, EventError]] = []
    duplicates = 0
    for index, (key, value) in enumerate(requests):
        try:
            request = _request(key, value, partitions)
        except EventError as exc:
            failures.append((index, exc))
            continue
        stored = entries[request.key] if request.key in entries else load(request.key)
        holder = None if stored is None else orjson.loads(stored)
        if request.partition is None:
            if holder is not None and holder["lead_id"] == request.lead_id:
                entries[request.key] = None
            continue
        if holder is None:
            holder = {"lead_id": request.lead_id, "partition": request.partition}
            entries[request.key] = orjson.dumps(holder)
        elif holder["lead_id"] != request.lead_id:
            duplicates += 1
        answer = {
            "schema_version": 1,
            "event_type": "lead.matched",
            "event_id": f"match-{request.key}",
            "occurred_at": request.occurred_at,
            "lead_id": request.lead_id,
            "match_key": request.key,
            "survivor_id": holder["lead_id"],
            "survivor_partition": holder["partition"],
        }
        answers.append((request.partition, request.lead_id.encode(), orjson.dumps(answer)))
    return MatchOut(answers, entries, failures, duplicates)
