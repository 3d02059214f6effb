"""A real worker under fire: thousands of hostile records interleaved with valid events, on every topic it reads.

Asserts what an operator would check: the worker is alive, every hostile record of the topics it consumes in a
group is on the dead-letter topic byte for byte with a reason, every valid event is decided exactly once, and
each topic's refusals are counted by reason.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from tests.hostile import HOSTILE, event, hostile_records, inject
from tests.integration.conftest import Flow
from worker.exceptions import DEAD_LETTER_REASONS

pytestmark = pytest.mark.integration

MAX_BYTES = 200_000


class _Bytes(str):
    """A header key written as bytes that are not UTF-8 (Kafka accepts any; aiokafka cannot decode them)."""

    __slots__ = ()

    def encode(self, *_args: Any, **_kwargs: Any) -> bytes:  # type: ignore[override]
        return b"\xff\xfe" + str.encode(self)


def _valid(lead_id: str, n: int) -> dict[str, Any]:
    if n % 3 == 0:
        return event(lead_id, f"{lead_id}-v{n}", lead={"company": f"Co {n}", "number_of_employees": n})
    return event(lead_id, f"{lead_id}-v{n}", "lead.activity", activity={"type": "page_view", "count": 1 + n % 4})


def _others(data: dict[str, Any]) -> list[bytes | None]:
    """Hostile records for a topic whose records look like ``data``: every hostile value, as the whole record
    and in each field, and the record wrong-typed field by field; and a tombstone."""
    out: list[bytes | None] = [None, b"\xff\xfe", *HOSTILE.values()]
    for name in data:
        out += [inject(data, (name,), raw) for raw in (HOSTILE["deep_arrays"], HOSTILE["string_of_100kb"], b"1e400")]
        out += [inject(data, (name,), raw) for raw in (b"7", b"true", b"[]", b"{}", b'"\\ud800"')]
    return out


def test_hostile_records_on_every_topic_cost_their_dead_letters_and_nothing_else(flow: Flow, tmp_path: Path) -> None:
    s = flow.settings
    worker = flow.start_worker(LEADFLOW_MAX_EVENT_BYTES=str(MAX_BYTES))
    producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=20)
    rng = random.Random(2026)

    # the leads topic: hostile records of lead L1 interleaved with valid events of L1 and of 40 other leads
    hostile = hostile_records(rng, 2000)
    hostile.append(("too_large", b"L1", orjson.dumps(event("L1", "big", lead={"company": "x" * (MAX_BYTES + 10)}))))
    valid: list[dict[str, Any]] = []
    sent_hostile: list[tuple[bytes | None, bytes | None]] = []
    garbage_header = [(_Bytes("trace-id"), b"\x00\x01"), ("ok", b"fine")]
    for i, (_, key, value) in enumerate(hostile):
        headers = garbage_header if i % 50 == 0 else []
        producer.send(s.topic_leads, key=key, value=value, headers=headers)
        sent_hostile.append((key, value))
        lead = "L1" if i % 4 == 0 else f"V{i % 40}"
        good = _valid(lead, i)
        producer.send(s.topic_leads, key=lead.encode(), value=orjson.dumps(good), headers=headers)
        valid.append(good)
    producer.flush()

    # the other topics the worker reads
    feedback = {"event_type": "opportunity.accepted", "opportunity_id": "opp-1", "accepted_by": "ann"}
    request = {"kind": "route", "request_id": "opp-1#1", "attempt": 1, "pool": "ae", "opportunity": {"lead_id": "L"}}
    notice = {"kind": "assigned", "opportunity_id": "opp-1", "attempt": 1, "pool": "ae", "member": "ann"}
    account = {"name": "Acme", "owner_id": "005", "domains": ["acme.example"]}
    control = {"kind": "ruleset", "name": "r.yaml", "text": "not: a ruleset"}  # no variant may switch rulesets
    grouped = {s.topic_feedback: _others(feedback), s.topic_route_requests: _others(request)}
    grouped[s.topic_sla] = _others(notice)
    for topic, values in grouped.items():
        for value in values:
            try:
                producer.send(topic, key=b"opp-1", value=value).get(timeout=30)
            except Exception as exc:
                raise AssertionError(f"{topic}: {value!r:.100}: {exc!r}") from exc
    # valid records there: a tombstone deletes an account, {} is an account of nothing, no domains is fine, and
    # an account's other keys are the CRM's business (20,000 of them included)
    harmless = {None, b"{}", inject(account, ("domains",), b"[]"), HOSTILE["object_of_20000_keys"]}
    bad_accounts = [v for v in _others(account) if v not in harmless]
    for value in bad_accounts:
        producer.send(s.topic_accounts, key=b"001", value=value)
    # a long name or text is a control record still (its ruleset is then refused, as reloads_total counts)
    long = HOSTILE["string_of_100kb"]
    bad_control = [v for v in _others(control) if v not in {inject(control, (f,), long) for f in ("name", "text")}]
    for value in bad_control:
        producer.send(s.topic_control, key=b"ruleset", value=value)
    producer.flush()

    # every valid event decided exactly once
    decisions = flow.read(s.topic_decisions, len(valid), timeout=180)
    decided = Counter(d.json["event_id"] for d in decisions)
    assert decided == Counter(e["event_id"] for e in valid)

    # every hostile record of a grouped topic on the dead-letter topic, byte for byte, with a reason
    expected = len(sent_hostile) + sum(len(v) for v in grouped.values())
    dead = flow.read(s.topic_dlq, expected, timeout=120)
    by_source = Counter(d.headers["leadflow.source_topic"].decode() for d in dead)
    assert by_source == {s.topic_leads: len(sent_hostile), **{t: len(v) for t, v in grouped.items()}}
    from_leads = [(d.key, d.value) for d in dead if d.headers["leadflow.source_topic"] == s.topic_leads.encode()]
    assert Counter(from_leads) == Counter(sent_hostile)
    for topic, values in grouped.items():
        assert sorted(d.value or b"" for d in dead if d.headers["leadflow.source_topic"] == topic.encode()) == sorted(
            v or b"" for v in values
        )
    reasons = Counter(d.headers["leadflow.reason"].decode() for d in dead)
    assert set(reasons) <= set(DEAD_LETTER_REASONS) - {"processing_error"}
    assert reasons["too_large"] >= 1

    # the worker is alive, counted every refusal by source, and keeps deciding
    assert worker.poll() is None, flow.log()[-3000:]
    refused = _refused(flow, until={"accounts": len(bad_accounts), "control": len(bad_control)})
    assert refused["leads"] == len(sent_hostile)
    assert refused["feedback"] == len(grouped[s.topic_feedback])
    assert refused["route_requests"] == len(grouped[s.topic_route_requests])
    assert refused["sla"] == len(grouped[s.topic_sla])
    assert refused["accounts"] == len(bad_accounts)
    assert refused["control"] == len(bad_control)
    producer.send(s.topic_leads, key=b"L-after", value=orjson.dumps(_valid("L-after", 1)))
    producer.flush()
    producer.close()
    later = flow.read(s.topic_decisions, len(valid) + 1)
    assert later[-1].json["event_id"] == "L-after-v1"
    assert worker.poll() is None
    assert "Traceback" not in flow.log()


def _refused(flow: Flow, until: dict[str, int], timeout: float = 30.0) -> Counter[str]:
    """``leadflow_records_refused_total`` summed by source, once the sources in ``until`` reach their counts."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    while True:
        out: Counter[str] = Counter()
        for family in text_string_to_metric_families(flow.metrics()):
            for sample in family.samples:
                if sample.name == "leadflow_records_refused_total":
                    out[sample.labels["source"]] += int(sample.value)
        if all(out[source] >= n for source, n in until.items()) or time.monotonic() > deadline:
            return out
        time.sleep(0.2)
