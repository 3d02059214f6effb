"""The demo's web-to-lead phase: forms posted over HTTP to a real ``leadflow intake`` process, as a website would.

The posts are what a site's forms send in a week: new visitors (urlencoded, Salesforce's field names, and JSON),
a visitor who clicks "send" twice, people the CRM already holds under another lead id (a webinar list, then the
website: the ruleset's ``duplicates:`` rules merge them), a bot that fills the hidden honeypot field and a form
that does not fit the contract. The demo then reads each web lead's decisions off ``lead-decisions``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from worker.exceptions import LeadflowError
from worker.tools.broker import free_port

__all__ = ["FormPost", "IntakeRun", "demo_forms", "post_forms", "running_intake", "web_summary"]

_FIRST = ("Maya", "Tom", "Priya", "Jonas", "Lea", "Omar", "Sofia", "Ken", "Ines", "Raj", "Nora", "Elif")
_LAST = ("Berg", "Okafor", "Silva", "Nakamura", "Dubois", "Kowalski", "Haddad", "Larsen", "Moreau", "Patel")
_COMPANIES = (
    ("Northwind Analytics", "northwind-analytics.com", "Technology"),
    ("Bluepeak Logistics", "bluepeak.io", "Transportation"),
    ("Cedar & Stone Legal", "cedarstone.law", "Legal"),
    ("Helio Health", "heliohealth.org", "Healthcare"),
    ("Quarry Foods", "quarryfoods.com", "Food & Beverage"),
    ("Vantage Robotics GmbH", "vantage-robotics.de", "Manufacturing"),
)
_TITLES = ("VP Sales", "Head of Marketing", "Operations Manager", "CTO", "Analyst", "Director of IT")
_FORMS = ("pricing-page", "demo-request", "contact-us", "ebook-download")
_HONEYPOT = "hp_name"


@dataclass(frozen=True)
class FormPost:
    """One post: what kind of visitor sent it, the fields, and how (urlencoded or JSON)."""

    kind: str  # new | again | known | bot | invalid
    fields: dict[str, Any]
    as_json: bool = False


@dataclass
class IntakeRun:
    """What the intake answered: per post, the HTTP status and the body."""

    answers: list[tuple[FormPost, int, dict[str, Any]]] = field(default_factory=list)

    def accepted_leads(self) -> dict[str, str]:
        """lead id -> the kind of post that created it (honeypot answers excluded: nothing was produced)."""
        return {
            body["lead_id"]: post.kind
            for post, status, body in self.answers
            if status == 202 and post.kind != "bot" and "lead_id" in body
        }


def demo_forms(known_leads: Iterable[dict[str, Any]], seed: int, new: int = 24, known: int = 6) -> list[FormPost]:
    """The week's posts: ``new`` visitors, two double submits, ``known`` people the CRM already has, a bot and a
    form that does not fit."""
    rng = random.Random(seed)  # noqa: S311  # sample data, not secrets
    posts: list[FormPost] = []
    for i in range(new):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company, domain, industry = rng.choice(_COMPANIES)
        fields: dict[str, Any] = {
            "first_name": first,
            "last_name": last,
            "email": f"{first}.{last}{i}@{domain}".lower(),
            "company": company,
            "title": rng.choice(_TITLES),
            "industry": industry,
            "URL": f"https://www.{domain}",
            "employees": str(rng.choice((12, 80, 450, 2_000))),
            "lead_source": "Web",
            "form": rng.choice(_FORMS),
            _HONEYPOT: "",
        }
        posts.append(FormPost("new", fields, as_json=i % 3 == 0))
    for post in posts[:2]:  # a visitor clicks "send" twice: the same form again
        posts.append(FormPost("again", dict(post.fields), post.as_json))
    people = [lead for lead in known_leads if lead.get("email")]
    for lead in rng.sample(people, min(known, len(people))):
        # someone from an earlier list import fills in the website's demo form: a second lead id, one person
        fields = {k: lead[k] for k in ("first_name", "last_name", "company") if lead.get(k)}
        fields.update({"email": lead["email"], "lead_source": "Web", "form": "demo-request"})
        posts.append(FormPost("known", fields))
    posts.append(FormPost("bot", {"email": "win@prizes.example", "first_name": "Bot", _HONEYPOT: "Buy now"}))
    posts.append(FormPost("invalid", {"email": "not-an-email", "employees": "lots", "favourite_colour": "teal"}))
    return posts


@contextmanager
def running_intake(env: dict[str, str], log: Path, timeout: float = 30.0) -> Iterator[str]:
    """``leadflow intake`` in a child process (as in production); yields its ``/leads`` URL once it answers."""
    port = free_port()
    child_env = {
        **os.environ,
        **env,
        "LEADFLOW_INTAKE_HOST": "127.0.0.1",
        "LEADFLOW_INTAKE_PORT": str(port),
        "LEADFLOW_INTAKE_RATE": "100",  # the demo posts from one address
        "LEADFLOW_INTAKE_BURST": "100",
        "LEADFLOW_INTAKE_HONEYPOT": _HONEYPOT,
    }
    with log.open("ab") as out:
        process = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "worker", "intake"], env=child_env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                msg = f"leadflow intake exited with code {process.returncode}; see {log}"
                raise LeadflowError(msg)
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310  # our child, http on loopback
                    break
            except OSError:
                if time.monotonic() > deadline:
                    msg = f"leadflow intake did not answer on {base} within {timeout:.0f}s; see {log}"
                    raise LeadflowError(msg) from None
                time.sleep(0.2)
        yield f"{base}/leads"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def post_forms(url: str, posts: Iterable[FormPost]) -> IntakeRun:
    """Post each form as a browser (urlencoded) or a site's backend (JSON) would; keeps every answer."""
    run = IntakeRun()
    for post in posts:
        if post.as_json:
            body, kind = orjson.dumps(post.fields), "application/json"
        else:
            body, kind = urllib.parse.urlencode(post.fields).encode(), "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=body, headers={"Content-Type": kind}, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # our child on loopback
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        run.answers.append((post, status, orjson.loads(text) if text else {}))
    return run


def web_summary(console: Console, run: IntakeRun, decisions: Iterable[dict[str, Any]]) -> None:
    """What the intake answered, and what the worker decided for the web leads."""
    answers = Counter((post.kind, status) for post, status, _ in run.answers)
    table = Table(title="web-to-lead: forms posted to leadflow intake")
    for col in ("visitor", "answer", "posts"):
        table.add_column(col, justify="right" if col == "posts" else "left")
    labels = {
        "new": "new visitor",
        "again": "double submit",
        "known": "already a lead (list import)",
        "bot": "bot (honeypot filled)",
        "invalid": "form that does not fit",
    }
    for kind, label in labels.items():
        for (kind_, status), n in sorted(answers.items()):
            if kind_ == kind:
                table.add_row(label, str(status), str(n))
    console.print(table)
    for _, status, body in run.answers:
        if status == 400:
            problems = "; ".join(f"{name}: {problem}" for name, problem in body.get("errors", {}).items())
            console.print(f"  400 tells the site what to fix, per field: {problems}", markup=False, soft_wrap=True)
    leads = run.accepted_leads()
    final: dict[str, dict[str, Any]] = {}
    merged_records = 0
    for decision in decisions:
        merged_records += decision.get("event_type") == "lead.merged"
        if decision.get("lead_id") in leads and "decision_id" in decision:  # not the lead.merged records
            final[decision["lead_id"]] = decision
    doubles = sum(1 for post, status, _ in run.answers if post.kind == "again" and status == 202)
    merged = {lead_id: d["duplicate_of"] for lead_id, d in final.items() if d.get("duplicate_of")}
    console.print(
        f"[bold]web leads[/]: {len(leads)} leads from {sum(answers[(k, 202)] for k in labels if k != 'bot')} accepted"
        f" posts ({doubles} double submits were the same lead and decided once); by final status: "
        + ", ".join(f"{s} {n}" for s, n in Counter(d["status"] for d in final.values()).most_common())
    )
    known = [lead_id for lead_id, kind in leads.items() if kind == "known"]
    if merged:
        console.print(
            f"[bold]duplicates merged[/]: {len(merged)} of the {len(known)} people already in the CRM were recognised"
            " by the ruleset's duplicates: rules; their web lead says duplicate_of, e.g. "
            + ", ".join(f"{dup} → {survivor}" for dup, survivor in list(merged.items())[:3])
        )
    else:
        console.print(f"{len(known)} of the web leads are people the CRM already held under another lead id.")
    console.print(
        f"lead.merged records on lead-decisions: {merged_records} in all (the rest are people the sample itself"
        " holds under two lead ids); a duplicate never converts, and its engagement counts on its survivor"
    )
