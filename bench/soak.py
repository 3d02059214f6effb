"""Soak: the worker killed with SIGKILL and restarted while it decides, and its memory over a million leads.

Both subcommands start their own embedded broker (``leadflow broker``) and run the worker as ``leadflow run``
child processes, as in production; they import nothing from ``worker``, so that they measure whatever the
installed ``leadflow`` command does.

``crash``: produce ``--events`` lead events over ``--leads`` leads (a seeded mix in which about 28 % of the leads
convert and are routed through pools or to a queue), run the worker and SIGKILL it ``--kills`` times at seeded
random moments, restarting it each time; then wait until every event is decided and read every output topic.
Reported: events without a decision (must be 0), leads with two opportunity ids (0), leads converted twice (0),
routing requests answered twice differently (0), repeated outputs per topic (counted; byte-identical or not, and
which fields differ), wall time, and the recovery time of each kill (kill to the first new decision). ``--rate N``
produces N events a second while the kills happen (live), and kills come ``--min-gap`` to ``--max-gap`` seconds
after a restarted worker's first new decision; without it everything is produced first (backlog), and since a
backlog is decided in seconds, its kills come at random points of its progress (3 % to 85 % of the events
decided; ``--batch-size 2000`` cuts 10^5 events into fifty batches where the worker's default makes ten, too few
for ten kills to interrupt). A share of the kills (``--startup-share``) hits a worker that is still starting:
joining the group, recovering its tables.

``memory``: ``--leads`` distinct leads, one event each (RocksDB store); the worker's RSS is sampled every second
and plotted against the leads decided; it must level off once ``LEADFLOW_STATE_CACHE_SIZE`` states are cached.

    python bench/soak.py crash --store rocksdb --seed 1 --json /tmp/soak-rocksdb.json
    python bench/soak.py crash --store memory --rate 350 --max-gap 8 --json /tmp/soak-live-memory.json
    python bench/soak.py memory --leads 1000000 --plot docs/img/soak-memory.png --json /tmp/soak-memory.json

Worker logs and state stay in ``--workdir`` (a new directory under /tmp by default) for a look afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]

APP_ID = "soak"
LEADS, DECISIONS, OPPORTUNITIES, DLQ, ROUTING = (
    "leads",
    "lead-decisions",
    "opportunities",
    "leads-dlq",
    "routing-decisions",
)
OUTPUTS = (DECISIONS, OPPORTUNITIES, ROUTING, DLQ)
ROUTE_REQUESTS = f"{APP_ID}-route-requests"
TOPICS = (*OUTPUTS, LEADS, "opportunity-feedback", ROUTE_REQUESTS, f"{APP_ID}-sla")
ID_FIELD = {DECISIONS: "decision_id", OPPORTUNITIES: "opportunity_id", ROUTING: "routing_id"}
"""The id a consumer drops repeats by, per output topic (schemas/README.md, "Ids")."""

RULES = """
version: "soak-1"
name: soak
description: The soak's ruleset - fit and engagement points; demo requests and hot leads convert and are routed.
conversion:
  stage: Qualification
  close_in_days: 30
  amount: 10000
  name: "$company - $lead_source"
scoring:
  - id: title-executive
    when: {field: title, op: matches, value: "(?i)\\\\b(chief|founder|president|vp|ceo|cto|cfo)\\\\b"}
    points: 20
  - id: title-director
    when: {field: title, op: matches, value: "(?i)\\\\b(director|head of)\\\\b"}
    points: 12
  - id: employees-200-plus
    when: {field: number_of_employees, op: gte, value: 200}
    points: 10
  - id: revenue-10m
    when: {field: annual_revenue, op: gte, value: 10000000}
    points: 8
  - id: demo-request
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 40
  - id: meeting
    when: {field: activity.meeting.count, op: gte, value: 1}
    points: 30
  - id: webinar
    when: {field: activity.webinar_attended.count, op: gte, value: 1}
    points: 15
  - id: content-download
    when: {field: activity.content_download.count, op: gte, value: 1}
    points: 10
  - id: email-clicks
    per: activity.email_click.count
    points: 3
    max: 15
  - id: page-views
    per: activity.page_view.count
    points: 1
    max: 15
  - id: email-bounced
    when: {field: activity.email_bounced.count, op: gte, value: 1}
    points: -30
qualification:
  - id: unsubscribed
    when: {field: activity.unsubscribe.count, op: gte, value: 1}
    status: Unqualified
  - id: hot
    when: {field: points, op: gte, value: 80}
    status: Qualified
    convert: true
    opportunity:
      stage: Needs Analysis
      amount: {field: annual_revenue, multiply: 0.001, min: 5000, max: 250000, round: 0}
  - id: demo-request-fit
    when:
      all:
        - {field: activity.demo_request.count, op: gte, value: 1}
        - {field: points, op: gte, value: 50}
    status: Qualified
    convert: true
  - id: warm
    when: {field: points, op: gte, value: 25}
    status: Contacted
routing:
  default: {queue: Inbound AEs}
  rules:
    - id: enterprise
      when: {field: number_of_employees, op: gte, value: 1000}
      to: {pool: enterprise}
  territories:
    - id: north-america
      country: [United States, Canada]
      to: {pool: north-america}
    - id: europe
      country: [United Kingdom, Germany, France, Netherlands, Spain]
      to: {pool: europe}
  pools:
    - name: enterprise
      strategy: weighted_round_robin
      members:
        - {id: 005-ANA, weight: 200}
        - {id: 005-BEN, weight: 100}
        - {id: 005-CHO, weight: 100}
    - name: north-america
      strategy: round_robin
      members: [{id: 005-DEV}, {id: 005-EVA}, {id: 005-FIN}]
    - name: europe
      strategy: round_robin
      members: [{id: 005-HAN}, {id: 005-IDA}]
"""
"""Self-contained (not the shipped ruleset, which may change): whether a lead converts depends on its events only,
not on the model's score, and converted leads go to three pools (a weighted one) or a queue."""

Json = dict[str, Any]


# --- the events ---------------------------------------------------------------------------------------------------

_TITLES = ("VP Sales", "CTO", "Head of Operations", "Director of IT", "Sales Manager", "Engineer", "Analyst", "Founder")
_COUNTRIES = ("United States", "Canada", "Germany", "France", "United Kingdom", "Spain", "Brazil", "India", "Japan")
_SOURCES = ("Web", "Webinar", "Partner", "Trade Show", "Purchased List", "Employee Referral")
_INDUSTRIES = ("Technology", "Software", "Healthcare", "Manufacturing", "Retail", "Education")
_ACTIVITIES = (
    ("page_view", 40),
    ("email_open", 25),
    ("email_click", 12),
    ("content_download", 6),
    ("form_submit", 4),
    ("webinar_attended", 3),
    ("chat", 2),
    ("demo_request", 2),
    ("call", 2),
    ("meeting", 1),
    ("email_bounced", 0.6),
    ("unsubscribe", 0.4),
)
_START = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)


def lead_id(n: int) -> str:
    return f"S{n:07d}"


def profile(rng: random.Random, n: int) -> Json:
    """A lead's fields as a web form or a CRM sync sends them."""
    company = f"Company {n}"
    return {
        "first_name": f"First{n}",
        "last_name": f"Last{n}",
        "company": company,
        "email": f"person{n}@company{n}.example",
        "title": rng.choice(_TITLES),
        "lead_source": rng.choice(_SOURCES),
        "industry": rng.choice(_INDUSTRIES),
        "annual_revenue": rng.choice((None, 2_000_000, 15_000_000, 80_000_000, 400_000_000)),
        "number_of_employees": rng.choice((8, 40, 150, 450, 2_500)),
        "country": rng.choice(_COUNTRIES),
        "website": f"company{n}.example",
    }


def event_counts(rng: random.Random, events: int, leads: int) -> list[int]:
    """How many events each lead gets: at least one, heavy-tailed (a few leads get hundreds, beyond the dedupe
    window of 64), summing to ``events``."""
    weights = [rng.paretovariate(1.6) for _ in range(leads)]
    total = sum(weights)
    counts = [1 + int((events - leads) * w / total) for w in weights]
    short = events - sum(counts)
    for i in rng.sample(range(leads), k=min(leads, abs(short))) if short else ():
        counts[i] += 1 if short > 0 else -1 if counts[i] > 1 else 0
    while (diff := events - sum(counts)) != 0:  # what the rounding and the floor of 1 left over
        i = rng.randrange(leads)
        if diff > 0:
            counts[i] += 1
        elif counts[i] > 1:
            counts[i] -= 1
    return counts


def crash_events(events: int, leads: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``events`` (key, value) pairs over ``leads`` leads: each lead's first event is its ``lead.upserted``, then
    activities (and now and then a changed title), each lead's events in order, the leads interleaved at random."""
    rng = random.Random(seed)
    counts = event_counts(rng, events, leads)
    slots = [n for n, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(slots)
    kinds, weights = zip(*_ACTIVITIES, strict=True)
    seen = [0] * leads
    out: list[tuple[bytes, bytes]] = []
    for position, n in enumerate(slots):
        k = seen[n]
        seen[n] += 1
        lid = lead_id(n)
        event: Json = {
            "schema_version": 1,
            "event_id": f"{lid}-e{k}",
            "lead_id": lid,
            "occurred_at": (_START + dt.timedelta(seconds=position * 3)).isoformat(),
        }
        if k == 0:
            event.update(event_type="lead.upserted", lead=profile(random.Random(seed * 1_000_003 + n), n))
        elif rng.random() < 0.03:
            event.update(event_type="lead.upserted", lead={"title": rng.choice(_TITLES)})
        else:
            kind = rng.choices(kinds, weights)[0]
            event.update(event_type="lead.activity", activity={"type": kind, "detail": f"/{kind}/{k}"})
        out.append((lid.encode(), orjson.dumps(event)))
    return out


def memory_events(leads: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """One ``lead.upserted`` for each of ``leads`` distinct leads."""
    rng = random.Random(seed)
    for n in range(leads):
        lid = lead_id(n)
        event = {
            "schema_version": 1,
            "event_id": f"{lid}-e0",
            "event_type": "lead.upserted",
            "lead_id": lid,
            "occurred_at": (_START + dt.timedelta(seconds=n)).isoformat(),
            "lead": profile(rng, n),
        }
        yield lid.encode(), orjson.dumps(event)


def event_ids(events: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """(lead id, event id) of each event produced."""
    out = []
    for _, value in events:
        event = orjson.loads(value)
        out.append((event["lead_id"], event["event_id"]))
    return out


# --- what the outputs say (pure) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One output record, as read back."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


def undecided(produced: Iterable[tuple[str, str]], decisions: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The (lead id, event id) pairs produced that no decision answers, in the order produced."""
    decided = {(d.get("lead_id"), d.get("event_id")) for d in decisions}
    return [pair for pair in produced if pair not in decided]


def opportunity_ids_by_lead(
    decisions: Iterable[Mapping[str, Any]], opportunities: Iterable[Mapping[str, Any]]
) -> dict[str, set[str]]:
    """Every opportunity id each lead was given, by its decisions or by opportunity records."""
    ids: dict[str, set[str]] = defaultdict(set)
    for record in (*decisions, *opportunities):
        if record.get("opportunity_id") is not None:
            ids[record["lead_id"]].add(record["opportunity_id"])
    return dict(ids)


def leads_with_several(ids: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """The leads with more than one id, with their ids sorted."""
    return {lead: sorted(found) for lead, found in ids.items() if len(found) > 1}


def converted_twice(decisions: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Leads converted by more than one event (the same event decided twice is one conversion)."""
    by_lead: dict[str, set[str]] = defaultdict(set)
    for d in decisions:
        if d.get("action") == "converted":
            by_lead[d["lead_id"]].add(d["event_id"])
    return {lead: sorted(events) for lead, events in by_lead.items() if len(events) > 1}


@dataclass
class Repeats:
    """Records of one topic sharing an id: how many, and how the repeats differ from the first record."""

    records: int = 0
    distinct: int = 0
    repeated_ids: int = 0
    extra_records: int = 0  # records beyond the first per id
    identical: int = 0  # extra records byte for byte the first
    different: int = 0
    fields: dict[str, int] = field(default_factory=dict)  # field (or field.subfield) → differing extra records
    examples: list[str] = field(default_factory=list)  # a few ids that differ
    diffs: list[dict[str, Any]] = field(default_factory=list)  # for those: what differs, and the record's context


def diff_fields(first: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """Top-level fields whose values differ, as ``field.subfield`` one level down when both are objects."""
    out: list[str] = []
    for key in sorted(set(first) | set(other)):
        a, b = first.get(key), other.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(f"{key}.{sub}" for sub in sorted(set(a) | set(b)) if a.get(sub) != b.get(sub))
        else:
            out.append(key)
    return out


_CONTEXT = ("lead_id", "event_id", "request_id", "pool", "target", "member", "attempt", "reason", "owner_id", "queue")


def _pick(record: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The values at ``field`` or ``field.subfield`` paths of a record."""
    out = {}
    for path in paths:
        head, _, sub = path.partition(".")
        value = record.get(head)
        out[path] = value.get(sub) if sub and isinstance(value, dict) else value
    return out


def repeats(records: Iterable[tuple[str, bytes]], examples: int = 5) -> Repeats:
    """Count the repeats among (id, value) records: each record whose id came before is compared with the first."""
    first: dict[str, bytes] = {}
    out = Repeats()
    ids_repeated: set[str] = set()
    fields: Counter[str] = Counter()
    for rid, value in records:
        out.records += 1
        seen = first.get(rid)
        if seen is None:
            first[rid] = value
            continue
        out.extra_records += 1
        ids_repeated.add(rid)
        if seen == value:
            out.identical += 1
            continue
        out.different += 1
        a, b = orjson.loads(seen), orjson.loads(value)
        differ = diff_fields(a, b)
        fields.update(differ)
        if len(out.examples) < examples and rid not in out.examples:
            out.examples.append(rid)
            context = {k: a[k] for k in _CONTEXT if k in a}
            out.diffs.append({"id": rid, "context": context, "first": _pick(a, differ), "again": _pick(b, differ)})
    out.distinct = len(first)
    out.repeated_ids = len(ids_repeated)
    out.fields = dict(fields.most_common())
    return out


def reassigned(routing_decisions: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Routing requests answered with more than one member or target: ``request_id@pool`` → what each answer said."""
    answers: dict[str, list[str]] = defaultdict(list)
    for d in routing_decisions:
        key = f"{d.get('request_id')}@{d.get('pool')}"
        answer = str(d.get("member") or d.get("target"))
        if answer not in answers[key]:
            answers[key].append(answer)
    return {key: found for key, found in answers.items() if len(found) > 1}


@dataclass(frozen=True)
class Levelling:
    """Whether RSS levels off: growth per 100,000 leads over the first and the last third of the run after the
    state cache filled, and the verdict."""

    cache_full_at: int
    first_mb_per_100k: float
    last_mb_per_100k: float
    last_third_growth_mb: float
    levelled: bool


def _slope(points: Sequence[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in points) / var


def levelling(
    samples: Sequence[tuple[int, int]], cache_size: int, *, ratio: float = 0.25, flat_mb: float = 20.0
) -> Levelling:
    """From (leads decided, RSS bytes) samples: does RSS level off once ``cache_size`` leads are cached?

    The samples past the point where the cache is full are cut into thirds by leads decided; RSS levels off when
    the last third grows at most ``ratio`` times as fast as the first (per lead), or by less than ``flat_mb`` MB
    in all. With too few samples past that point the verdict is False: nothing was shown.
    """
    after = sorted((x, y / 2**20) for x, y in samples if x >= cache_size)
    if len(after) < 6 or after[-1][0] == after[0][0]:
        return Levelling(cache_size, float("nan"), float("nan"), float("nan"), levelled=False)
    lo, hi = after[0][0], after[-1][0]
    third = (hi - lo) / 3
    first = [(float(x), y) for x, y in after if x <= lo + third]
    last = [(float(x), y) for x, y in after if x >= hi - third]
    first_slope, last_slope = _slope(first) * 100_000, _slope(last) * 100_000
    growth = last[-1][1] - last[0][1]
    levelled = growth < flat_mb or last_slope <= ratio * max(first_slope, 0.0)
    return Levelling(cache_size, round(first_slope, 2), round(last_slope, 2), round(growth, 1), levelled)


# --- processes ------------------------------------------------------------------------------------------------------


def leadflow_command() -> list[str]:
    """The ``leadflow`` console script next to this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).with_name("leadflow")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("leadflow")
    if found is None:
        raise SystemExit("soak: cannot find the 'leadflow' command; run 'make install' and use .venv/bin/python")
    return [found]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[str]:
    """``leadflow broker`` on a free port (in memory) for the duration; yields its bootstrap address."""
    port = free_port()
    log = (workdir / "broker.log").open("ab")
    process = subprocess.Popen([*leadflow_command(), "broker", "--port", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise SystemExit(f"soak: the broker exited with code {process.returncode}; see {workdir}/broker.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"soak: the broker did not listen on {port} within 30 s")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()  # leadflow broker stops tansu on SIGTERM
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def create_topics(bootstrap: str, partitions: int) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], client_id="soak-admin")
    try:
        admin.create_topics([NewTopic(name, partitions, 1) for name in TOPICS])
    finally:
        admin.close()


def worker_env(bootstrap: str, workdir: Path, store: str, partitions: int, extra: Mapping[str, str]) -> dict[str, str]:
    rules = workdir / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    env = {
        **os.environ,
        "LEADFLOW_BROKER_URL": f"kafka://{bootstrap}",
        "LEADFLOW_APP_ID": APP_ID,
        "LEADFLOW_TOPIC_LEADS": LEADS,
        "LEADFLOW_TOPIC_DECISIONS": DECISIONS,
        "LEADFLOW_TOPIC_OPPORTUNITIES": OPPORTUNITIES,
        "LEADFLOW_TOPIC_DLQ": DLQ,
        "LEADFLOW_TOPIC_ROUTING_DECISIONS": ROUTING,
        "LEADFLOW_PARTITIONS": str(partitions),
        "LEADFLOW_RULES": str(rules),
        "LEADFLOW_STORE": store,
        "LEADFLOW_STATE_DIR": str(workdir / "state"),
        "LEADFLOW_WEB_HOST": "127.0.0.1",
        "LEADFLOW_WEB_PORT": str(free_port()),
    }
    env.update(extra)
    return env


class Worker:
    """``leadflow run`` as a child process, started again as often as asked; its output goes to one log."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.env = dict(env)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> float:
        with self.log.open("ab") as out:
            out.write(f"\n===== soak: start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [*leadflow_command(), "run"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1
        return time.monotonic()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone (nothing of it can write after this returns)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL after 30 s; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def scrape(port: int) -> dict[str, float]:
    """The worker's ``leadflow_*`` metrics, each summed over its labels (empty when /metrics does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("leadflow_"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name.split("{", 1)[0]] += float(value)
    return dict(out)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process from /proc (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


class Outputs:
    """Reads the output topics from their beginning: end offsets cheaply while the worker runs, records after."""

    def __init__(self, bootstrap: str, topics: Sequence[str] = OUTPUTS) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(
            bootstrap_servers=[bootstrap],
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 2**20,
            fetch_max_bytes=64 * 2**20,
        )
        self.partitions = []
        for topic in topics:
            deadline = time.monotonic() + 30
            while not (found := self.consumer.partitions_for_topic(topic)):
                if time.monotonic() > deadline:
                    raise SystemExit(f"soak: topic {topic!r} has no partitions after 30 s")
                time.sleep(0.2)
            self.partitions += [TopicPartition(topic, p) for p in sorted(found)]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)
        self.records: list[Record] = []
        self.counts: Counter[str] = Counter()
        self.decided: set[tuple[str, str]] = set()  # (lead id, event id) of every decision read
        self.bootstrap = bootstrap
        self.group: Any = None  # a consumer in the worker's group, that never joins it: reads committed offsets

    def committed(self, topic: str = LEADS) -> dict[int, int]:
        """The worker's group's committed offset of each partition of ``topic`` (where a restart resumes)."""
        from kafka import KafkaConsumer, TopicPartition

        if self.group is None:
            self.group = KafkaConsumer(bootstrap_servers=[self.bootstrap], group_id=APP_ID, enable_auto_commit=False)
        found = sorted(self.consumer.partitions_for_topic(topic) or ())
        return {p: int(self.group.committed(TopicPartition(topic, p)) or 0) for p in found}

    def end_offsets(self, topic: str) -> dict[int, int]:
        """ListOffsets' end of each partition (short of the real end on tansu when its last batch holds several)."""
        from kafka import TopicPartition

        found = sorted(self.consumer.partitions_for_topic(topic) or ())
        ends = self.consumer.end_offsets([TopicPartition(topic, p) for p in found])
        return {tp.partition: int(end) for tp, end in sorted(ends.items())}

    def count(self, topic: str = DECISIONS) -> int:
        """Records of ``topic`` read so far, after reading what has arrived.

        Counted by reading, not from end offsets: the embedded broker's ListOffsets leaves out the last batch of a
        partition when it holds several records (the worker works around it, see LEADFLOW_HIGHWATER_FROM_FETCH).
        """
        self.read()
        return self.counts[topic]

    def distinct(self) -> int:
        """Events decided so far (a decision sent twice counts once), after reading what has arrived."""
        self.read()
        return len(self.decided)

    def read(self, seconds: float = 0.0) -> int:
        """Read what arrived (and for ``seconds`` more); returns how many records were new."""
        new = 0
        deadline = time.monotonic() + seconds
        while True:
            batches = self.consumer.poll(timeout_ms=100, max_records=20_000)
            for tp, rows in batches.items():
                for r in rows:
                    self.records.append(Record(tp.topic, tp.partition, r.offset, r.timestamp, r.key, r.value))
                    if tp.topic == DECISIONS and r.value is not None:
                        d = orjson.loads(r.value)
                        self.decided.add((d["lead_id"], d["event_id"]))
                self.counts[tp.topic] += len(rows)
                new += len(rows)
            if not batches and time.monotonic() >= deadline:
                return new

    def values(self, topic: str) -> list[Json]:
        return [orjson.loads(r.value) for r in self.records if r.topic == topic and r.value is not None]

    def close(self) -> None:
        self.consumer.close()
        if self.group is not None:
            self.group.close()


def produce(
    bootstrap: str,
    events: Iterable[tuple[bytes, bytes]],
    total: int,
    rate: float | None = None,
    sent: list[int] | None = None,
) -> None:
    """Send ``events`` to the leads topic, ``rate`` a second if given, counting them in ``sent[0]``."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=[bootstrap], linger_ms=5, batch_size=256 * 1024, compression_type="zstd", acks="all"
    )
    sent = sent if sent is not None else [0]
    t0 = time.monotonic()
    last_note = t0
    for key, value in events:
        producer.send(LEADS, key=key, value=value)
        sent[0] += 1
        if rate is not None and sent[0] % max(1, int(rate / 20)) == 0:
            producer.flush()
            ahead = t0 + sent[0] / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        if time.monotonic() - last_note > 10:
            last_note = time.monotonic()
            note(f"produced {sent[0]:,} of {total:,} events")
    producer.flush()
    producer.close()


def note(message: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {message}", flush=True)


# --- crash --------------------------------------------------------------------------------------------------------


@dataclass
class Kill:
    """One SIGKILL: when, in which phase of the worker's life, and how long until decisions came again."""

    at_s: float  # since the first start
    worker_age_s: float
    phase: str  # "start-up" (no new decision yet), "deciding", or "idle" (a backlog already decided)
    decisions_before: int  # decision records on the topic when it was killed
    committed: dict[int, int]  # the group's committed offsets of the leads topic then, by partition
    replays_recognised: float | None  # leadflow_duplicate_events_total of the killed worker just before
    committed_route_requests: dict[int, int] = field(default_factory=dict)  # the pools' requests, likewise
    recovery_s: float | None = None  # kill → first new decision record
    restart_to_output_s: float | None = None
    note: str = ""  # why there is no recovery time


def _committed(outputs: Outputs, topic: str = LEADS) -> dict[int, int]:
    try:
        return outputs.committed(topic)
    except Exception as exc:  # evidence only: a failed look must not end the soak
        note(f"could not read the committed offsets: {exc!r}")
        return {}


def _await_count(outputs: Outputs, worker: Worker, target: float, timeout: float) -> bool:
    """Wait until ``target`` events were decided; False if the worker exited or time ran out first."""
    deadline = time.monotonic() + timeout
    while outputs.distinct() < target:
        if worker.exited() is not None or time.monotonic() > deadline:
            return False
    return True


def _await_output(
    outputs: Outputs, worker: Worker, since: int, timeout: float, produced: int | None = None
) -> float | None:
    """Wait until the decisions topic grows past ``since``; the monotonic time it did, None on timeout, or when
    every one of ``produced`` events is decided and committed (nothing is left to decide)."""
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while time.monotonic() < deadline:
        if outputs.count() > since:
            return time.monotonic()
        if worker.exited() is not None:
            return None
        if produced is not None and time.monotonic() - checked > 2 and outputs.distinct() >= produced:
            checked = time.monotonic()
            if sum(_committed(outputs).values()) >= produced:
                return None
        time.sleep(0.1)
    return None


def run_crash(args: argparse.Namespace) -> Json:
    rng = random.Random(args.seed)
    workdir = _workdir(args, f"crash-{args.store}-{'live' if args.rate else 'backlog'}")
    note(
        f"crash soak: {args.events:,} events over {args.leads:,} leads, store {args.store}, {args.kills} kills, "
        f"seed {args.seed}, {f'live at {args.rate} events/s' if args.rate else 'backlog'}; workdir {workdir}"
    )
    events = crash_events(args.events, args.leads, args.seed)
    produced = event_ids(events)
    problems: list[str] = []
    with broker(workdir) as bootstrap:
        create_topics(bootstrap, args.partitions)
        extra = {"LEADFLOW_SESSION_TIMEOUT": str(args.session_timeout), "LEADFLOW_LOG_LEVEL": args.log_level}
        if args.batch_size is not None:
            extra["LEADFLOW_BATCH_SIZE"] = str(args.batch_size)
        worker = Worker(worker_env(bootstrap, workdir, args.store, args.partitions, extra), workdir / "worker.log")
        outputs = Outputs(bootstrap)
        sent = [0]
        producer_thread = None
        t_produce = time.monotonic()
        if args.rate:
            producer_thread = threading.Thread(
                target=produce, args=(bootstrap, events, len(events), args.rate, sent), daemon=True
            )
            producer_thread.start()
        else:
            produce(bootstrap, events, len(events), sent=sent)
            note(f"produced {len(events):,} events in {time.monotonic() - t_produce:.1f} s")
        t0 = worker.start()
        kills: list[Kill] = []

        def done(producer: threading.Thread | None) -> int | None:
            """How many events were produced, once they all were (None while the producer runs)."""
            return None if producer is not None and producer.is_alive() else sent[0]

        try:
            at_start, started = 0, t0
            # a backlog is decided in seconds (about 10,000 events/s): its kills come at random points of its
            # progress (decision records read), so that each one interrupts work; live, at random intervals
            marks = sorted(rng.uniform(0.03, 0.85) * len(events) for _ in range(args.kills))
            for k in range(args.kills):
                if rng.random() < args.startup_share:  # kill it while it starts (joins, recovers its tables)
                    time.sleep(rng.uniform(0.5, args.startup_window))
                elif args.rate:
                    before = outputs.count()
                    if _await_output(outputs, worker, before, args.recovery_timeout, done(producer_thread)) is None:
                        why = "exited" if worker.exited() is not None else "wrote no decision"
                        note(f"kill {k + 1}: the worker {why} within {args.recovery_timeout:.0f} s of its start")
                    time.sleep(rng.uniform(args.min_gap, args.max_gap))
                elif not _await_count(outputs, worker, marks[k], args.recovery_timeout):
                    why = "exited" if worker.exited() is not None else f"did not reach {marks[k]:,.0f} decisions"
                    note(f"kill {k + 1}: the worker {why} within {args.recovery_timeout:.0f} s")
                if (code := worker.exited()) is not None:
                    problems.append(f"worker start {worker.starts} exited by itself with code {code}")
                    note(problems[-1])
                at = time.monotonic()
                count = outputs.count()
                phase = "deciding" if count > at_start else "start-up"
                if done(producer_thread) is not None and outputs.distinct() >= len(events):
                    phase = "idle"  # every event was decided: this kill interrupts nothing
                replays = scrape(int(worker.env["LEADFLOW_WEB_PORT"])).get("leadflow_duplicate_events_total")
                worker.kill()
                committed = _committed(outputs)
                kill_requests = _committed(outputs, ROUTE_REQUESTS)
                kill = Kill(round(at - t0, 2), round(at - started, 2), phase, count, committed, replays, kill_requests)
                kills.append(kill)
                restarted = started = worker.start()
                # what the killed worker had sent may still land for a moment: read it as its own (a new worker
                # takes several seconds to start), then wait for the first decision of the new one
                outputs.read(1.0)
                after_kill = at_start = outputs.count()
                new = _await_output(outputs, worker, after_kill, args.recovery_timeout, done(producer_thread))
                if new is not None:
                    kill.recovery_s = round(new - at, 2)
                    kill.restart_to_output_s = round(new - restarted, 2)
                elif worker.exited() is not None:
                    problems.append(f"after kill {k + 1} the worker exited with code {worker.exited()}")
                elif outputs.distinct() >= sent[0]:
                    kill.note = "nothing left to decide"
                else:
                    problems.append(
                        f"after kill {k + 1} no new decision within {args.recovery_timeout:.0f} s "
                        f"({after_kill:,} decision records on the topic, {sent[0]:,} events produced)"
                    )
                note(
                    f"kill {k + 1}/{args.kills} at {kill.at_s:.1f} s (worker age {kill.worker_age_s:.1f} s, "
                    f"{kill.phase}, {count:,} decision records): decisions again after "
                    f"{kill.recovery_s if kill.recovery_s is not None else '-'} s"
                )
            if producer_thread is not None:
                producer_thread.join()
                note(f"produced {sent[0]:,} events in {time.monotonic() - t_produce:.1f} s")
            waited = _await_all(outputs, worker, produced, args.timeout)
            wall = time.monotonic() - t0
            note(f"every event decided {wall:.1f} s after the first start" if waited else "timed out")
            settle_quiet(outputs, 5.0)
            final_committed = _committed(outputs)
            final_requests = _committed(outputs, ROUTE_REQUESTS), outputs.end_offsets(ROUTE_REQUESTS)
            code = worker.stop()
        finally:
            worker.stop()
        outputs.read()
        outputs.close()
    report = analyse(outputs.records, produced)
    report.update(
        mode="live" if args.rate else "backlog",
        store=args.store,
        seed=args.seed,
        events=args.events,
        leads=args.leads,
        rate=args.rate,
        batch_size=args.batch_size,
        kills=[asdict(k) for k in kills],
        wall_s=round(wall, 1),
        all_decided_in_time=waited,
        final_exit_code=code,
        committed_at_end=final_committed,
        committed_all=sum(final_committed.values()) == len(produced),
        route_requests_committed_and_end_at_end=final_requests,
        worker_starts=worker.starts,
        workdir=str(workdir),
        problems=problems + report.pop("problems"),
        tracebacks=worker.log.read_text(errors="replace").count("Traceback"),
    )
    recoveries = [k.recovery_s for k in kills if k.recovery_s is not None]
    report["recovery_s"] = {
        "min": min(recoveries, default=None),
        "median": sorted(recoveries)[len(recoveries) // 2] if recoveries else None,
        "max": max(recoveries, default=None),
    }
    return report


def _await_all(outputs: Outputs, worker: Worker, produced: Sequence[tuple[str, str]], timeout: float) -> bool:
    """Read outputs until every event has a decision or a dead letter; restart the worker if it died."""
    deadline = time.monotonic() + timeout
    wanted = set(produced)
    dead: set[tuple[str, str]] = set()
    read = 0
    last_note = time.monotonic()
    while True:
        outputs.read(1.0)
        for r in outputs.records[read:]:
            if r.topic == DLQ and r.value is not None:
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    e = orjson.loads(r.value)
                    dead.add((e["lead_id"], e["event_id"]))
        read = len(outputs.records)
        decided = outputs.decided | dead
        left = len(wanted - decided)
        if left == 0:
            return True
        if worker.exited() is not None:
            note(f"the worker exited with code {worker.exited()}; starting it again")
            worker.start()
        if time.monotonic() > deadline:
            return False
        if time.monotonic() - last_note > 10:
            last_note = time.monotonic()
            note(f"{len(wanted) - left:,} of {len(wanted):,} events decided")


def settle_quiet(outputs: Outputs, quiet: float) -> None:
    """Read until no output topic grew for ``quiet`` seconds (routing finishes after the decisions)."""
    while outputs.read(quiet) > 0:
        pass


def analyse(records: Sequence[Record], produced: Sequence[tuple[str, str]]) -> Json:
    """The crash soak's figures from every output record and the events produced."""
    by_topic: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_topic[r.topic].append(r)
    values = {t: [orjson.loads(r.value) for r in by_topic[t] if r.value is not None] for t in ID_FIELD}
    decisions = values[DECISIONS]
    missing = undecided(produced, decisions)
    several = leads_with_several(opportunity_ids_by_lead(decisions, values[OPPORTUNITIES]))
    twice = converted_twice(decisions)
    moved = reassigned(values[ROUTING])
    repeat = {
        t: asdict(repeats((v[ID_FIELD[t]], r.value or b"") for v, r in zip(values[t], by_topic[t], strict=True)))
        for t in ID_FIELD
    }
    converted = {d["lead_id"] for d in decisions if d.get("action") == "converted"}
    problems = []
    if missing:
        problems.append(f"{len(missing):,} events without a decision, e.g. {missing[:5]}")
    if several:
        problems.append(f"{len(several):,} leads with two opportunity ids, e.g. {list(several.items())[:3]}")
    if twice:
        problems.append(f"{len(twice):,} leads converted twice, e.g. {list(twice.items())[:3]}")
    if moved:
        problems.append(f"{len(moved):,} routing requests answered differently, e.g. {list(moved.items())[:3]}")
    return {
        "events_produced": len(produced),
        "events_without_decision": len(missing),
        "dead_letters": len(by_topic[DLQ]),
        "leads_converted": len(converted),
        "opportunities": repeat[OPPORTUNITIES]["distinct"],
        "routing_decisions": repeat[ROUTING]["distinct"],
        "leads_with_two_opportunity_ids": len(several),
        "leads_converted_twice": len(twice),
        "routing_requests_answered_differently": len(moved),
        "repeats": repeat,
        "problems": problems,
        "examples": {
            "without_decision": missing[:20],
            "two_opportunity_ids": dict(list(several.items())[:20]),
            "converted_twice": dict(list(twice.items())[:20]),
            "answered_differently": dict(list(moved.items())[:20]),
        },
    }


# --- memory -------------------------------------------------------------------------------------------------------


def run_memory(args: argparse.Namespace) -> Json:
    workdir = _workdir(args, f"memory-{args.store}")
    note(
        f"memory soak: {args.leads:,} distinct leads, store {args.store}, state cache {args.cache_size:,}; "
        f"workdir {workdir}"
    )
    samples: list[dict[str, float]] = []
    with broker(workdir) as bootstrap:
        create_topics(bootstrap, args.partitions)
        extra = {"LEADFLOW_STATE_CACHE_SIZE": str(args.cache_size), "LEADFLOW_LOG_LEVEL": args.log_level}
        worker = Worker(worker_env(bootstrap, workdir, args.store, args.partitions, extra), workdir / "worker.log")
        port = int(worker.env["LEADFLOW_WEB_PORT"])
        sent = [0]
        producer_thread = threading.Thread(
            target=produce, args=(bootstrap, memory_events(args.leads, args.seed), args.leads, None, sent), daemon=True
        )
        producer_thread.start()
        t0 = worker.start()
        last_note = t0
        decided = 0
        try:
            while True:
                time.sleep(max(0.0, t0 + len(samples) + 1 - time.monotonic()))
                rss = rss_bytes(worker.pid)
                if rss is None or worker.exited() is not None:
                    msg = f"soak: the worker exited ({worker.exited()}); see {worker.log}:\n{worker.tail()}"
                    raise SystemExit(msg)
                # decided events from the worker's own counter (reading a million decisions here would take CPU
                # from the worker); one event per lead
                decided = int(scrape(port).get("leadflow_decisions_total", decided))
                samples.append(
                    {
                        "t_s": round(time.monotonic() - t0, 2),
                        "rss_bytes": rss,
                        "leads_decided": decided,
                        "leads_produced": sent[0],
                    }
                )
                if time.monotonic() - last_note > 15:
                    last_note = time.monotonic()
                    note(f"{decided:,} of {args.leads:,} leads decided, RSS {rss / 2**20:,.0f} MiB")
                if decided >= args.leads:
                    break
                if time.monotonic() - t0 > args.timeout:
                    note(f"timed out after {args.timeout:.0f} s")
                    break
        finally:
            worker.stop()
    wall = samples[-1]["t_s"] if samples else 0.0
    verdict = levelling([(int(s["leads_decided"]), int(s["rss_bytes"])) for s in samples], args.cache_size)
    peak = max((s["rss_bytes"] for s in samples), default=0)
    report: Json = {
        "store": args.store,
        "leads": args.leads,
        "state_cache_size": args.cache_size,
        "wall_s": wall,
        "leads_decided": samples[-1]["leads_decided"] if samples else 0,
        "rate_per_s": round(samples[-1]["leads_decided"] / wall) if wall else None,
        "rss_peak_mb": round(peak / 2**20, 1),
        "rss_at_cache_full_mb": _rss_at(samples, args.cache_size),
        "rss_final_mb": round(samples[-1]["rss_bytes"] / 2**20, 1) if samples else None,
        "levelling": asdict(verdict),
        "workdir": str(workdir),
        "samples": samples,
    }
    if args.plot:
        plot_memory(samples, args.cache_size, args.plot, f"{args.leads:,} distinct leads, {args.store} store")
    return report


def _rss_at(samples: Sequence[Mapping[str, float]], decided: int) -> float | None:
    for s in samples:
        if s["leads_decided"] >= decided:
            return round(s["rss_bytes"] / 2**20, 1)
    return None


def plot_memory(samples: Sequence[Mapping[str, float]], cache_size: int, path: Path, title: str) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    xs = [s["leads_decided"] / 1000 for s in samples]
    ax.plot(xs, [s["rss_bytes"] / 2**20 for s in samples], color="#1f77b4", lw=1.6, label="worker RSS")
    ax.axvline(cache_size / 1000, color="#d62728", ls="--", lw=1, label=f"state cache full ({cache_size:,} leads)")
    ax.set_xlabel("leads decided (thousands)")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"leadflow worker memory: {title}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- the command line ---------------------------------------------------------------------------------------------


def _workdir(args: argparse.Namespace, what: str) -> Path:
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return Path(args.workdir)
    return Path(tempfile.mkdtemp(prefix=f"soak-{what}-"))


def print_crash(report: Mapping[str, Any]) -> None:
    print(f"\n== crash soak: {report['mode']}, store {report['store']}, seed {report['seed']} ==")
    rows = [
        ("events produced", f"{report['events_produced']:,}"),
        ("events without a decision (must be 0)", f"{report['events_without_decision']:,}"),
        ("leads with two opportunity ids (must be 0)", f"{report['leads_with_two_opportunity_ids']:,}"),
        ("leads converted twice (must be 0)", f"{report['leads_converted_twice']:,}"),
        ("routing requests answered differently (must be 0)", f"{report['routing_requests_answered_differently']:,}"),
        ("dead letters", f"{report['dead_letters']:,}"),
        (
            "leads converted / opportunities / routing decisions",
            f"{report['leads_converted']:,} / {report['opportunities']:,} / {report['routing_decisions']:,}",
        ),
        ("wall time (first start → every event decided)", f"{report['wall_s']:.1f} s"),
        (
            "recovery, kill → first new decision (min/median/max)",
            " / ".join("-" if v is None else f"{v:.1f} s" for v in report["recovery_s"].values()),
        ),
        ("worker starts", f"{report['worker_starts']}"),
        ("tracebacks in the worker log", f"{report['tracebacks']}"),
    ]
    for topic, r in report["repeats"].items():
        rows.append(
            (
                f"repeats on {topic}",
                f"{r['extra_records']:,} extra records of {r['records']:,} ({r['repeated_ids']:,} ids): "
                f"{r['identical']:,} identical, {r['different']:,} different"
                + (f" in {', '.join(f'{k} ({v:,})' for k, v in r['fields'].items())}" if r["fields"] else ""),
            )
        )
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"  {a:<{width}}  {b}")
    for k, kill in enumerate(report["kills"], 1):
        print(
            f"  kill {k:2d}: at {kill['at_s']:7.1f} s, worker age {kill['worker_age_s']:5.1f} s, {kill['phase']:8s}, "
            f"{kill['decisions_before']:7,} decision records, recovery "
            f"{'-' if kill['recovery_s'] is None else format(kill['recovery_s'], '.1f') + ' s'} {kill['note']}"
        )
    for problem in report["problems"]:
        print(f"  PROBLEM: {problem}")


def print_memory(report: Mapping[str, Any]) -> None:
    lv = report["levelling"]
    print(f"\n== memory soak: {report['leads']:,} leads, store {report['store']} ==")
    print(f"  decided {report['leads_decided']:,} leads in {report['wall_s']:.0f} s ({report['rate_per_s']} /s)")
    print(
        f"  RSS at cache full ({report['state_cache_size']:,} leads) {report['rss_at_cache_full_mb']} MiB, "
        f"peak {report['rss_peak_mb']} MiB, final {report['rss_final_mb']} MiB"
    )
    print(
        f"  growth after the cache filled: first third {lv['first_mb_per_100k']} MiB per 100k leads, last third "
        f"{lv['last_mb_per_100k']} MiB per 100k ({lv['last_third_growth_mb']} MiB in all): "
        f"{'levels off' if lv['levelled'] else 'DOES NOT level off'}"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soak.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", choices=["rocksdb", "memory"], default="rocksdb", help="LEADFLOW_STORE")
    common.add_argument("--seed", type=int, default=1, help="seeds the events and the kill moments")
    common.add_argument("--partitions", type=int, default=4, help="partitions of every topic (LEADFLOW_PARTITIONS)")
    common.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    common.add_argument("--workdir", type=Path, help="where logs and state go (default: a new /tmp directory)")
    common.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every decision")
    common.add_argument("--log-level", default="WARNING", help="the worker's LEADFLOW_LOG_LEVEL")

    c = sub.add_parser(
        "crash",
        parents=[common],
        help="SIGKILL the worker at random moments; count what it cost",
        description="Produce lead events, SIGKILL and restart the worker --kills times, then check "
        "that every event is decided, no lead has two opportunities, and count repeated outputs.",
    )
    c.add_argument("--events", type=int, default=100_000, help="lead events to produce (default 100,000)")
    c.add_argument("--leads", type=int, default=5_000, help="over this many leads, heavy-tailed (default 5,000)")
    c.add_argument("--kills", type=int, default=10, help="SIGKILLs, each followed by a restart (default 10)")
    c.add_argument(
        "--batch-size",
        type=int,
        help="LEADFLOW_BATCH_SIZE (the worker's default: 10,000); a backlog of 10^5 events is 10 such batches, "
        "too few for 10 kills to land in the middle of the work",
    )
    c.add_argument(
        "--rate",
        type=float,
        help="produce this many events a second while killing (live mode); "
        "without it everything is produced before the worker starts (backlog mode)",
    )
    c.add_argument(
        "--min-gap", type=float, default=0.5, help="live: least seconds from a restart's first new decision to a kill"
    )
    c.add_argument(
        "--max-gap", type=float, default=8.0, help="live: most seconds from a restart's first new decision to a kill"
    )
    c.add_argument(
        "--startup-share",
        type=float,
        default=0.2,
        help="share of kills aimed at a worker still starting (joining the group, recovering tables)",
    )
    c.add_argument("--startup-window", type=float, default=6.0, help="such kills come 0.5 to this many s after start")
    c.add_argument(
        "--session-timeout",
        type=float,
        default=10.0,
        help="LEADFLOW_SESSION_TIMEOUT: how long the group waits for a killed member (the worker's default)",
    )
    c.add_argument(
        "--recovery-timeout",
        type=float,
        default=240.0,
        help="a worker that writes no decision this long after a restart is reported as a problem",
    )
    c.set_defaults(func=run_crash, show=print_crash)

    m = sub.add_parser(
        "memory",
        parents=[common],
        help="sample the worker's RSS while a million distinct leads arrive",
        description="Produce one event for each of --leads distinct leads while the worker runs; "
        "sample its RSS every second; say whether it levels off once the state cache is full.",
    )
    m.add_argument("--leads", type=int, default=1_000_000, help="distinct leads, one event each (default 10^6)")
    m.add_argument("--cache-size", type=int, default=50_000, help="LEADFLOW_STATE_CACHE_SIZE (the worker's default)")
    m.add_argument("--plot", type=Path, metavar="PNG", help="plot RSS against leads decided into this PNG")
    m.set_defaults(func=run_memory, show=print_memory)
    return p


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the finally blocks stop the worker and the broker


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = dt.datetime.now(dt.UTC)
    report = args.func(args)
    report["command"] = " ".join(["bench/soak.py", *(argv if argv is not None else sys.argv[1:])])
    report["started"] = started.isoformat(timespec="seconds")
    report["machine"] = {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    args.show(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        print(f"results written to {args.json}")
    return 1 if report.get("problems") else 0


if __name__ == "__main__":
    sys.exit(main())
