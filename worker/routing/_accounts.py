"""Lead-to-account matching: an index of known accounts by domain and normalised name.

Accounts come from the compacted ``accounts`` topic (``put`` with None is a tombstone). A lead matches by its email
domain (free mail never counts), then its website's domain, then its normalised company name. When several accounts
share a key, the smallest account id wins, so the result does not depend on the order accounts arrived in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from worker.conditions import FREE_EMAIL_DOMAINS, domain_of

__all__ = ["LEGAL_SUFFIXES", "AccountIndex", "AccountMatch", "normalize_company"]

MatchedBy = Literal["email_domain", "website_domain", "company_name"]

LEGAL_SUFFIXES = frozenset(
    {
        "inc", "incorporated", "ltd", "limited", "llc", "llp", "lp", "gmbh", "ag", "kg", "sa", "sas", "sarl", "se",
        "plc", "corp", "corporation", "co", "company", "bv", "nv", "srl", "spa", "oy", "oyj", "ab", "as", "aps",
        "pty", "pte", "kk", "sl", "sro", "zoo", "doo", "ltda", "mbh", "ug", "ev",
    }
)  # fmt: skip
"""Legal-form words dropped from the end of a company name ("Acme GmbH" and "ACME" are the same company)."""

_PUNCT = re.compile(r"[^\w\s]+")
_DOTS = re.compile(r"(?<=\w)\.(?=\w)")


def normalize_company(name: str) -> str:
    """A company name reduced for matching: accents, case, punctuation, a leading "the" and legal suffixes gone.

    ``"The Acme Co., Ltd."`` and ``"ACME"`` both give ``"acme"``; ``"Müller GmbH & Co. KG"`` gives ``"muller"``.
    """
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = _DOTS.sub("", text)  # "s.a." -> "sa", "co." stays "co"
    words = _PUNCT.sub(" ", text).replace("_", " ").split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and (words[-1] in LEGAL_SUFFIXES or words[-1] == "and"):
        words.pop()
    return " ".join(words)


def _domain(text: object) -> str | None:
    """The lower-case host of an address or website without ``www.``; None when there is none."""
    if not isinstance(text, str) or not text.strip():
        return None
    host = domain_of(text).strip().rstrip(".")
    return host if "." in host else None


def _parents(domain: str) -> list[str]:
    """``eu.mail.acme.com`` -> itself, ``mail.acme.com``, ``acme.com``: a subdomain matches its company's domain."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


@dataclass(frozen=True, slots=True)
class AccountMatch:
    """The account a lead matched, its owner (None when it has none) and by what."""

    account_id: str
    owner_id: str | None
    matched_by: MatchedBy


@dataclass(frozen=True, slots=True)
class _Account:
    owner_id: str | None
    domains: frozenset[str]
    name: str | None


class AccountIndex:
    """Known accounts, indexed for :meth:`match`; kept up to date with :meth:`put` from the ``accounts`` topic."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._by_domain: dict[str, set[str]] = {}
        self._by_name: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._accounts)

    def put(self, account_id: str, account: Mapping[str, object] | None) -> None:
        """Add or replace an account (``{"account_id", "name", "owner_id", "website"?, "domains"?}``).

        None deletes it (a tombstone on the compacted topic).
        """
        old = self._accounts.pop(account_id, None)
        if old is not None:
            for domain in old.domains:
                _discard(self._by_domain, domain, account_id)
            if old.name:
                _discard(self._by_name, old.name, account_id)
        if account is None:
            return
        domains: set[str] = set()
        website = _domain(account.get("website"))
        if website is not None:
            domains.add(website)
        listed = account.get("domains")
        if isinstance(listed, list | tuple):
            domains.update(d for d in map(_domain, listed) if d is not None)
        domains -= FREE_EMAIL_DOMAINS
        raw_name = account.get("name")
        name = normalize_company(raw_name) if isinstance(raw_name, str) else ""
        owner = account.get("owner_id")
        record = _Account(owner if isinstance(owner, str) and owner else None, frozenset(domains), name or None)
        self._accounts[account_id] = record
        for domain in record.domains:
            self._by_domain.setdefault(domain, set()).add(account_id)
        if record.name:
            self._by_name.setdefault(record.name, set()).add(account_id)

    def match(self, email: str | None, website: str | None, company: str | None) -> AccountMatch | None:
        """The account of a lead: by email domain (not free mail), then website domain, then company name."""
        domain = _domain(email) if isinstance(email, str) and "@" in email else None
        if domain is not None and domain not in FREE_EMAIL_DOMAINS:
            found = self._by_any_domain(domain)
            if found is not None:
                return self._match(found, "email_domain")
        domain = _domain(website)
        if domain is not None:
            found = self._by_any_domain(domain)
            if found is not None:
                return self._match(found, "website_domain")
        if isinstance(company, str) and company.strip():
            ids = self._by_name.get(normalize_company(company))
            if ids:
                return self._match(min(ids), "company_name")
        return None

    def _by_any_domain(self, domain: str) -> str | None:
        for candidate in _parents(domain):
            ids = self._by_domain.get(candidate)
            if ids:
                return min(ids)
        return None

    def _match(self, account_id: str, matched_by: MatchedBy) -> AccountMatch:
        return AccountMatch(account_id, self._accounts[account_id].owner_id, matched_by)


def _discard(index: dict[str, set[str]], key: str, account_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(account_id)
        if not ids:
            del index[key]
