"""A seeded generator of realistic B2B leads, their activity over some weeks, and whether they converted.

Each lead gets a profile (the *fit*: source, industry, seniority, company size, email domain, country) and a
hidden *interest*. Interest drives how much the lead engages (page views, emails, forms, demo requests,
meetings...); fit and interest together, plus noise, decide whether the lead became a customer within the
window. A model only sees the profile and the activity counts, so it can learn the outcome well but not
perfectly (holdout AUC around 0.85; see docs/MODEL.md).

The events are exactly what a producer would send on ``leads`` (they all pass :func:`worker.lead.parse.parse_event`),
sorted by time. Same arguments, same output: everything is drawn from one ``random.Random(seed)``.

Why one module of about 650 lines: most of it is the generator's tables (industries, titles, activity rates);
the code that draws from them is short and reads them all.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["SynthData", "generate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SynthData:
    """Contract-shaped event dicts sorted by ``occurred_at``, and each lead's outcome (converted or not)."""

    events: list[dict[str, Any]]
    outcomes: dict[str, bool]


# -- profile vocabulary, with each value's effect on the hidden conversion log-odds -----------------------------

_FIRST = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Priya",
    "Wei",
    "Hiroshi",
    "Sofia",
    "Lukas",
    "Emma",
    "Noah",
    "Olivia",
    "Mateo",
    "Aisha",
    "Omar",
    "Ingrid",
    "Lars",
    "Chloé",
    "René",
    "Anna",
    "Ravi",
    "Mei",
    "Fatima",
    "Jonas",
    "Camille",
    "Diego",
    "Hannah",
    "Kenji",
    "Zoe",
    "Ethan",
    "Nia",
)
_LAST = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Patel",
    "Nguyen",
    "Kim",
    "Chen",
    "Müller",
    "Schmidt",
    "Schneider",
    "Dubois",
    "Laurent",
    "Rossi",
    "Jansen",
    "de Vries",
    "Andersson",
    "Nilsson",
    "Sato",
    "Tanaka",
    "Singh",
    "Kumar",
    "Silva",
    "Santos",
    "O'Brien",
)
_COMPANY_A = (
    "Blue",
    "North",
    "Bright",
    "Silver",
    "Quantum",
    "Apex",
    "Summit",
    "Harbor",
    "Iron",
    "Cedar",
    "Nova",
    "Vertex",
    "Pioneer",
    "Atlas",
    "Crescent",
    "Evergreen",
    "Falcon",
    "Granite",
    "Horizon",
    "Lumen",
    "Maple",
    "Orbit",
    "Prairie",
    "Redwood",
    "Sterling",
    "Tidal",
    "Union",
    "Vector",
    "Willow",
    "Zenith",
)
_COMPANY_B = (
    "river",
    "point",
    "stone",
    "field",
    "bridge",
    "wave",
    "peak",
    "line",
    "gate",
    "works",
    "light",
    "path",
    "forge",
    "leaf",
    "stack",
    "scale",
    "sky",
    "bay",
    "core",
    "dale",
)
_COMPANY_KIND = (
    "Systems",
    "Labs",
    "Analytics",
    "Logistics",
    "Health",
    "Software",
    "Group",
    "Partners",
    "Industries",
    "Solutions",
    "Capital",
    "Foods",
    "Energy",
    "Networks",
    "Robotics",
    "Media",
)

# (value, weight, effect)
_SOURCES = (
    ("Web", 0.28, 0.0),
    ("Email Campaign", 0.12, -0.25),
    ("Advertisement", 0.12, -0.35),
    ("Event", 0.09, 0.3),
    ("Webinar", 0.07, 0.2),
    ("Referral", 0.08, 1.1),
    ("Partner", 0.06, 0.75),
    ("Cold Call", 0.09, -0.7),
    ("Purchased List", 0.07, -1.0),
    ("Social Media", 0.02, -0.2),
)
_INDUSTRIES = (
    ("Technology", 0.18, 0.45),
    ("Finance", 0.09, 0.3),
    ("Healthcare", 0.09, 0.2),
    ("Manufacturing", 0.1, 0.1),
    ("Retail", 0.08, -0.15),
    ("Education", 0.06, -0.45),
    ("Government", 0.04, -0.55),
    ("Not For Profit", 0.03, -0.7),
    ("Consulting", 0.06, 0.1),
    ("Telecommunications", 0.04, 0.2),
    ("Media", 0.04, -0.1),
    ("Energy", 0.03, 0.1),
    ("Insurance", 0.04, 0.2),
    ("Transportation", 0.03, 0.0),
    ("Hospitality", 0.02, -0.3),
    ("Agriculture", 0.01, -0.2),
    ("Biotechnology", 0.01, 0.3),
    (None, 0.05, -0.2),
)
# country, weight, effect, phone prefix, email TLD, company suffixes, [(state, [cities])]
_COUNTRIES: tuple[
    tuple[str, float, float, str, str, tuple[str, ...], tuple[tuple[str | None, tuple[str, ...]], ...]], ...
] = (
    (
        "United States",
        0.46,
        0.2,
        "+1",
        "com",
        ("Inc.", "LLC", "Corp."),
        (
            ("CA", ("San Francisco", "Los Angeles", "San Diego", "San Jose")),
            ("NY", ("New York", "Buffalo")),
            ("TX", ("Austin", "Dallas", "Houston")),
            ("WA", ("Seattle", "Bellevue")),
            ("MA", ("Boston", "Cambridge")),
            ("IL", ("Chicago",)),
            ("GA", ("Atlanta",)),
            ("CO", ("Denver", "Boulder")),
            ("FL", ("Miami", "Orlando")),
        ),
    ),
    (
        "Canada",
        0.06,
        0.1,
        "+1",
        "ca",
        ("Inc.", "Ltd."),
        (
            ("ON", ("Toronto", "Ottawa")),
            ("BC", ("Vancouver",)),
            ("QC", ("Montreal",)),
        ),
    ),
    (
        "United Kingdom",
        0.1,
        0.1,
        "+44",
        "co.uk",
        ("Ltd", "plc"),
        ((None, ("London", "Manchester", "Edinburgh", "Bristol")),),
    ),
    ("Germany", 0.08, 0.1, "+49", "de", ("GmbH", "AG"), ((None, ("Berlin", "Munich", "Hamburg", "Cologne")),)),
    ("France", 0.05, 0.0, "+33", "fr", ("SAS", "SA"), ((None, ("Paris", "Lyon", "Toulouse")),)),
    ("Netherlands", 0.04, 0.05, "+31", "nl", ("B.V.",), ((None, ("Amsterdam", "Rotterdam", "Utrecht")),)),
    (
        "Australia",
        0.04,
        0.1,
        "+61",
        "com.au",
        ("Pty Ltd",),
        (
            ("NSW", ("Sydney",)),
            ("VIC", ("Melbourne",)),
            ("QLD", ("Brisbane",)),
        ),
    ),
    (
        "India",
        0.08,
        -0.35,
        "+91",
        "in",
        ("Pvt. Ltd.",),
        (
            ("Karnataka", ("Bengaluru",)),
            ("Maharashtra", ("Mumbai", "Pune")),
            ("Delhi", ("New Delhi",)),
        ),
    ),
    ("Brazil", 0.04, -0.25, "+55", "com.br", ("Ltda.",), (("SP", ("São Paulo",)), ("RJ", ("Rio de Janeiro",)))),
    ("Spain", 0.025, -0.05, "+34", "es", ("S.L.",), ((None, ("Madrid", "Barcelona")),)),
    ("Sweden", 0.015, 0.05, "+46", "se", ("AB",), ((None, ("Stockholm", "Gothenburg")),)),
    ("Japan", 0.01, 0.0, "+81", "jp", ("K.K.",), ((None, ("Tokyo", "Osaka")),)),
    ("Mexico", 0.01, -0.2, "+52", "mx", ("S.A. de C.V.",), ((None, ("Mexico City", "Guadalajara")),)),
)
_FUNCTIONS = (
    "Marketing",
    "Sales",
    "IT",
    "Engineering",
    "Operations",
    "Finance",
    "HR",
    "Product",
    "Procurement",
    "Customer Success",
    "Data",
)
# seniority, weight, effect, title templates ({f} = function)
_SENIORITY = (
    (
        "c-level",
        0.07,
        0.35,
        (
            "CEO",
            "Founder & CEO",
            "Co-Founder",
            "Owner",
            "Chief Technology Officer",
            "Chief Marketing Officer",
            "CFO",
            "COO",
            "President",
        ),
    ),
    ("vp", 0.1, 0.65, ("VP of {f}", "Vice President, {f}", "SVP {f}", "VP {f}")),
    ("director", 0.17, 0.5, ("Director of {f}", "{f} Director", "Head of {f}", "Senior Director, {f}")),
    ("manager", 0.26, 0.2, ("{f} Manager", "Senior {f} Manager", "{f} Operations Manager")),
    (
        "other",
        0.34,
        -0.35,
        (
            "{f} Specialist",
            "{f} Analyst",
            "Software Engineer",
            "Consultant",
            "{f} Coordinator",
            "Associate",
            "Student",
            "Intern",
        ),
    ),
    (None, 0.06, -0.45, ()),
)
_FREE_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com", "proton.me")
_FREE_DOMAINS_BY_COUNTRY = {"Germany": ("gmx.de", "web.de"), "United Kingdom": ("yahoo.co.uk", "hotmail.co.uk")}

# activity type -> (base events per week, sensitivity to interest, sensitivity to fit)
_ACTIVITY = (
    ("page_view", 3.0, 0.45, 0.1),
    ("email_open", 2.3, 0.25, 0.0),
    ("email_click", 0.6, 0.55, 0.05),
    ("form_submit", 0.12, 0.8, 0.1),
    ("content_download", 0.18, 0.6, 0.05),
    ("webinar_attended", 0.06, 0.7, 0.1),
    ("demo_request", 0.035, 1.1, 0.3),
    ("chat", 0.08, 0.6, 0.0),
    ("call", 0.22, 0.35, 0.25),
    ("meeting", 0.05, 1.0, 0.35),
    ("email_bounced", 0.0, 0.0, 0.0),  # driven by a bad address, see _activity
    ("unsubscribe", 0.012, -1.2, 0.0),
)
_DETAILS: dict[str, tuple[str, ...]] = {
    "page_view": (
        "/pricing",
        "/product",
        "/features",
        "/customers",
        "/docs/getting-started",
        "/blog/lead-routing",
        "/blog/kafka-at-scale",
        "/integrations",
        "/security",
        "/careers",
    ),
    "email_open": ("newsletter", "nurture-1", "nurture-2", "product-update", "event-invite"),
    "email_click": ("newsletter", "nurture-2", "product-update", "case-study"),
    "form_submit": ("contact-sales", "newsletter-signup", "trial-signup", "gated-content"),
    "content_download": (
        "whitepaper: real-time scoring",
        "ebook: the B2B funnel",
        "case study: logistics",
        "report: state of sales ops",
    ),
    "webinar_attended": ("webinar: routing that reps trust", "webinar: product tour"),
    "demo_request": ("demo form", "pricing page: talk to sales"),
    "chat": ("pricing question", "integration question", "support question"),
    "call": ("outbound call, 4 min", "inbound call, 12 min", "voicemail"),
    "meeting": ("discovery call", "technical deep dive", "proposal review"),
    "email_bounced": ("hard bounce", "mailbox full"),
    "unsubscribe": ("all marketing email",),
}
_CUSTOM_UPDATES: tuple[dict[str, Any], ...] = (
    {"budget_confirmed": True},
    {"budget_confirmed": False},
    {"timeline": "this quarter"},
    {"timeline": "next year"},
    {"preferred_contact": "email"},
    {"competitor": "incumbent CRM"},
)
_BASE_LOGIT = -2.6


def generate(n_leads: int, *, seed: int, start: dt.datetime, weeks: int = 6) -> SynthData:
    """``n_leads`` leads created over the first ~70 % of ``weeks`` weeks from ``start`` (timezone-aware)."""
    if start.tzinfo is None:
        msg = f"start must be timezone-aware (for instance datetime(..., tzinfo=UTC)), got {start!r}"
        raise ValueError(msg)
    if n_leads < 0 or weeks < 1:
        msg = f"need n_leads >= 0 and weeks >= 1, got n_leads={n_leads!r}, weeks={weeks!r}"
        raise ValueError(msg)
    rng = random.Random(seed)
    start = start.astimezone(dt.UTC)
    span = weeks * 7 * 86400
    rows: list[tuple[int, int, int, dict[str, Any]]] = []  # (second offset, lead index, n, event)
    outcomes: dict[str, bool] = {}
    width = max(6, len(str(n_leads)))
    for index in range(n_leads):
        lead_id = f"L{index + 1:0{width}d}"
        outcomes[lead_id] = _lead(rng, lead_id, index, span, rows)
    rows.sort(key=lambda row: row[:3])
    base = start.timestamp()
    events: list[dict[str, Any]] = []
    iso_cache: dict[int, str] = {}
    for offset, _, _, event in rows:
        stamp = iso_cache.get(offset)
        if stamp is None:
            stamp = dt.datetime.fromtimestamp(base + offset, dt.UTC).isoformat()
            iso_cache[offset] = stamp
        event["occurred_at"] = stamp
        events.append(event)
    logger.debug("generated %d leads, %d events (seed %d)", n_leads, len(events), seed)
    return SynthData(events=events, outcomes=outcomes)


def _pick(rng: random.Random, table: tuple[Any, ...]) -> Any:
    """One row of a (value, weight, ...) table, by weight."""
    r = rng.random() * sum(row[1] for row in table)
    for row in table:
        r -= row[1]
        if r <= 0:
            return row
    return table[-1]


def _lead(
    rng: random.Random, lead_id: str, index: int, span: int, rows: list[tuple[int, int, int, dict[str, Any]]]
) -> bool:
    """Append one lead's events to ``rows`` and return whether it converted."""
    profile, fit, bad_email = _profile(rng)
    interest = rng.gauss(0.0, 1.0) + 0.35 * fit
    created = rng.randrange(0, int(span * 0.7))
    active_weeks = (span - created) / (7 * 86400)
    timeline: list[tuple[int, dict[str, Any]]] = [(created, {"event_type": "lead.upserted", "lead": profile})]

    if rng.random() < 0.3:
        when = rng.randrange(created + 60, span)
        update: dict[str, Any]
        roll = rng.random()
        if roll < 0.35 and profile.get("title"):
            update = {"title": f"Head of {rng.choice(_FUNCTIONS)}"}  # a promotion
        elif roll < 0.5:
            update = {"rating": "Hot" if interest > 0.8 else "Warm" if interest > -0.3 else "Cold"}
        else:
            update = {"custom": dict(rng.choice(_CUSTOM_UPDATES))}
        timeline.append((when, {"event_type": "lead.upserted", "lead": update}))

    counts = _activity(rng, interest, fit, active_weeks, bad_email)
    for kind, count in counts.items():
        details = _DETAILS[kind]
        for _ in range(count):
            when = rng.randrange(created + 60, span)
            activity: dict[str, Any] = {"type": kind, "count": 1}
            if kind == "page_view":
                activity["count"] = 1 + int(rng.expovariate(0.6))
            if rng.random() < 0.85:
                activity["detail"] = rng.choice(details)
            timeline.append((when, {"event_type": "lead.activity", "activity": activity}))

    timeline[1:] = sorted(timeline[1:], key=lambda item: item[0])
    for n, (when, body) in enumerate(timeline, start=1):
        event = {
            "schema_version": 1,
            "event_id": f"{lead_id}-{n}",
            "event_type": body["event_type"],
            "occurred_at": "",
            "lead_id": lead_id,
        }
        if "lead" in body:
            event["lead"] = body["lead"]
        else:
            event["activity"] = body["activity"]
        rows.append((when, index, n, event))

    logit = (
        _BASE_LOGIT
        + 1.0 * fit
        + 1.4 * interest
        + 0.7 * min(counts["demo_request"], 1)
        + 0.45 * min(counts["meeting"], 2)
        - 1.2 * min(counts["unsubscribe"], 1)
        - 0.6 * bad_email
        + 0.6 * math.log(active_weeks / (span / (7 * 86400)))
        + rng.gauss(0.0, 0.4)
    )
    return rng.random() < 1.0 / (1.0 + math.exp(-logit))


def _activity(rng: random.Random, interest: float, fit: float, weeks: float, bad_email: bool) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, rate, beta, gamma in _ACTIVITY:
        lam = rate * weeks * math.exp(beta * interest + gamma * fit - 0.5 * beta * beta * 0.5)
        if bad_email and kind.startswith("email_") and kind != "email_bounced":
            lam *= 0.05
        counts[kind] = _poisson(rng, lam)
    counts["email_bounced"] = 1 + (rng.random() < 0.4) if bad_email else int(rng.random() < 0.01)
    return counts


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method for small means, a rounded normal for large ones (plenty for synthetic counts)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _profile(rng: random.Random) -> tuple[dict[str, Any], float, bool]:
    """A lead.upserted ``lead`` object, its fit (hidden log-odds effect) and whether the email bounces."""
    fit = 0.0
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    country, _, c_effect, phone_prefix, tld, suffixes, regions = _pick(rng, _COUNTRIES)
    fit += c_effect
    state, cities = rng.choice(regions)
    source, _, s_effect = _pick(rng, _SOURCES)
    fit += s_effect
    industry, _, i_effect = _pick(rng, _INDUSTRIES)
    fit += i_effect
    seniority, _, t_effect, templates = _pick(rng, _SENIORITY)
    fit += t_effect
    title = rng.choice(templates).format(f=rng.choice(_FUNCTIONS)) if templates else None

    employees = max(1, min(250_000, round(math.exp(rng.gauss(4.2, 1.7)))))
    fit += 0.28 * (math.log1p(employees) - 4.2) - 0.05 * max(0.0, math.log1p(employees) - 9.0) ** 2
    revenue = round(employees * math.exp(rng.gauss(math.log(160_000), 0.5)), -3)

    stem = rng.choice(_COMPANY_A) + rng.choice(_COMPANY_B)
    company = f"{stem} {rng.choice(_COMPANY_KIND)} {rng.choice(suffixes)}"
    domain = f"{stem.lower()}.{tld}"
    free = rng.random() < (0.45 if employees < 20 or seniority in ("other", None) else 0.12)
    if free:
        fit -= 0.75
        domains = _FREE_DOMAINS_BY_COUNTRY.get(country, ()) + _FREE_DOMAINS
        email_domain = rng.choice(domains)
    else:
        email_domain = domain
    local = _ascii(f"{first}.{last}".lower().replace(" ", "").replace("'", ""))
    if rng.random() < 0.25:
        local = _ascii(f"{first[0]}{last}".lower().replace(" ", "").replace("'", ""))
    bad_email = rng.random() < 0.04

    lead: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "company": company,
        "email": f"{local}@{email_domain}",
        "phone": f"{phone_prefix} {rng.randrange(100, 999)} {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}",
        "lead_source": source,
        "country": _noisy(rng, country),
        "city": rng.choice(cities),
        "website": f"https://www.{domain}",
    }
    if title is not None:
        lead["title"] = title
    if industry is not None:
        lead["industry"] = _noisy(rng, industry)
    if state is not None:
        lead["state"] = state
    if rng.random() < 0.85:
        lead["number_of_employees"] = employees
    if rng.random() < 0.7:
        lead["annual_revenue"] = float(revenue)
    if rng.random() < 0.2:
        lead["rating"] = rng.choice(("Hot", "Warm", "Cold"))
    if rng.random() < 0.3:
        lead["custom"] = {"utm_campaign": rng.choice(("spring-promo", "brand", "retargeting", "partner-q2"))}
    return lead, fit, bad_email


def _noisy(rng: random.Random, value: str) -> str:
    """Real CRM data: a few values arrive in another case or with stray spaces."""
    roll = rng.random()
    if roll < 0.02:
        return value.upper()
    if roll < 0.04:
        return f" {value.lower()} "
    return value


_ASCII = str.maketrans({"é": "e", "ü": "u", "ã": "a", "ö": "o"})


def _ascii(text: str) -> str:
    return text.translate(_ASCII)
