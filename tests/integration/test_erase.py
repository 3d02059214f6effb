"""Forgetting a lead on a real broker: a converted, routed lead is erased; then every topic the worker wrote (the
newest record per key, as compaction would leave it: tansu does not compact) is scanned for its email. A request
waiting at its pool when its lead is erased is never assigned; an erasure read again erases nothing that the lead,
sent again after it, made.

What is erased and what is not (yet) is listed in docs/PRIVACY.md; ``KNOWN_LIMITS`` here is that list, so a new
place holding the email, or one that stops holding it, fails this test until the document says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from tests.integration.conftest import Flow, activity, upsert, write_rules
from tests.routed_rules import routed
from worker.lead import ids
from worker.stream.topics import ensure_topics

pytestmark = pytest.mark.integration

EMAIL = "ada.osei@erase.example"
KNOWN_LIMITS = {"route-requests"}
"""Where the email stays after an erasure (docs/PRIVACY.md, "Known limits"): topic names without the test's suffix.
The routing requests are keyed by pool: a pool's newest request is another lead's, or the erased lead's."""


def _erased(lead_id: str, event_id: str) -> dict[str, object]:
    return {
        "schema_version": 1,
        "event_type": "lead.erased",
        "event_id": event_id,
        "occurred_at": "2026-11-20T10:00:00Z",
        "lead_id": lead_id,
    }


def _records(flow: Flow, topic: str) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to its end."""
    consumer = KafkaConsumer(bootstrap_servers=flow.settings.bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        got: list[ConsumerRecord] = []
        deadline = time.monotonic() + 20
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"{topic}: could not read to its end"
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(records)
        return got
    finally:
        consumer.close()


def _latest_per_key(flow: Flow, topic: str) -> dict[tuple[int, bytes | None], bytes | None]:
    """Every record of ``topic`` up to its end, the newest per (partition, key)."""
    return {(r.partition, r.key): r.value for r in _records(flow, topic)}


def _topics_written(flow: Flow) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=flow.settings.bootstrap_servers)
    try:
        names = admin.list_topics()
    finally:
        admin.close()
    s = flow.settings
    return sorted(n for n in names if flow.suffix in n and n != s.topic_leads)  # leads: the producer's, see PRIVACY


def _short(flow: Flow, topic: str) -> str:
    """A topic's name without the test's suffix: ``pipeline-state-changelog``, ``opportunities``..."""
    return topic.replace(f"lf-test-{flow.suffix}-", "").replace(f"-{flow.suffix}", "")


def test_an_erased_converted_routed_lead_leaves_no_email_but_in_the_known_limits(flow: Flow, tmp_path: Path) -> None:
    sla = "      sla: {accept_within_minutes: 600, then: next_member}\n"  # a clock running when the lead is erased
    rules = write_rules(tmp_path, routed("        - {id: ann, weight: 100}", pool=sla))
    flow.start_worker(LEADFLOW_RULES=str(rules))
    lead = {"company": "Erase GmbH", "email": EMAIL, "first_name": "Ada", "do_not_call": True}
    flow.produce([upsert("E1", "E1-u", **lead), activity("E1", "E1-d", "demo_request")])
    decisions = flow.read(flow.settings.topic_decisions, 2, timeout=90)
    assert decisions[1].json["action"] == "converted"
    routed_to = flow.read(flow.settings.topic_routing_decisions, 1, timeout=60)[0].json
    assert routed_to["member"] == "ann"
    opportunity = flow.read(flow.settings.topic_opportunities, 1)[0].json
    assert opportunity["contact"]["email"] == EMAIL

    flow.produce([_erased("E1", "E1-x")])
    audit = flow.read(flow.settings.topic_decisions, 3)[2]
    assert audit.key == b"E1"
    assert set(audit.json) == {"schema_version", "event_type", "lead_id", "event_id", "erased_at"}
    assert (audit.json["event_type"], audit.json["lead_id"], audit.json["event_id"]) == ("lead.erased", "E1", "E1-x")
    # a later event of the lead starts from nothing: no email, one event, not converted
    flow.produce([upsert("E1", "E1-v", company="Erase GmbH")])
    after = flow.read(flow.settings.topic_decisions, 4)[3].json
    assert (after["status"], after["action"], after["opportunity_id"]) == ("Open", "none", None)
    assert after["previous_status"] == "Open"  # not Qualified: the state was gone
    flow.produce([_erased("E1", "E1-y")])  # and forgotten again, so that the scan below finds nothing of it
    flow.read(flow.settings.topic_decisions, 5)

    holding = set()
    scanned = []
    for topic in _topics_written(flow):
        scanned.append(_short(flow, topic))
        for value in _latest_per_key(flow, topic).values():
            if value is not None and EMAIL.encode() in value:
                holding.add(_short(flow, topic))
    assert {"decisions", "routing-decisions", "lead-state-changelog"} <= set(scanned), scanned
    assert holding == KNOWN_LIMITS, f"scanned {scanned}"
    state = _latest_per_key(flow, next(t for t in _topics_written(flow) if t.endswith("lead-state-changelog")))
    assert state[next(k for k in state if k[1] == b"E1")] is None  # the lead's state: a tombstone
    assert orjson.loads(decisions[1].value)["lead_id"] == "E1"
    opportunity_id = ids.opportunity_id("E1").encode()
    for name in ("opportunities", "routing-decisions", "pipeline-state-changelog", "sla-state-changelog"):
        newest = _latest_per_key(flow, _topic(flow, name))
        assert [v for (_, k), v in newest.items() if k == opportunity_id] == [None], name  # tombstones
    answers = _latest_per_key(flow, _topic(flow, "route-done-changelog"))
    assert {k for (_, k), v in answers.items() if v is None} == {opportunity_id, opportunity_id + b"#1@ae"}


def _topic(flow: Flow, short: str) -> str:
    return next(t for t in _topics_written(flow) if _short(flow, t) == short)


def test_a_request_waiting_at_its_pool_when_its_lead_is_erased_is_never_assigned(flow: Flow, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, routed("        - {id: ann, weight: 100}\n        - {id: bob, weight: 100}"))
    ensure_topics(flow.settings)
    # converted and erased before the worker runs: its request reaches the pool right before the erasure
    lead = {"company": "Wait AG", "email": EMAIL}
    flow.produce([upsert("W1", "W1-u", **lead), activity("W1", "W1-d", "demo_request"), _erased("W1", "W1-x")])
    flow.start_worker(LEADFLOW_RULES=str(rules))
    assert [d.json.get("event_type") for d in flow.read(flow.settings.topic_decisions, 3, timeout=90)][2] == (
        "lead.erased"
    )
    flow.produce([upsert("W2", "W2-u", company="Next AG"), activity("W2", "W2-d", "demo_request")])
    routed_to = flow.read(flow.settings.topic_routing_decisions, 2, timeout=60)
    # the pool's owner reads in order: W1's request came first and was dropped, so W2 gets the pool's first member
    assert {r.key: r.value is None or (r.json["lead_id"], r.json["member"]) for r in routed_to} == {
        ids.opportunity_id("W1").encode(): True,  # the erasure's tombstone
        ids.opportunity_id("W2").encode(): ("W2", "ann"),
    }
    opportunities = flow.read(flow.settings.topic_opportunities, 2)
    assert {o.key: o.value is None or o.json["lead_id"] for o in opportunities} == {
        ids.opportunity_id("W1").encode(): True,  # the erasure's tombstone (keys on other partitions: any order)
        ids.opportunity_id("W2").encode(): "W2",
    }
    for topic in _topics_written(flow):
        if _short(flow, topic) != "route-requests":
            assert not [v for v in _latest_per_key(flow, topic).values() if v and EMAIL.encode() in v], topic


def test_an_erasure_read_again_leaves_what_the_lead_sent_again_made(flow: Flow, tmp_path: Path) -> None:
    sla = "      sla: {accept_within_minutes: 600, then: next_member}\n"
    rules = write_rules(tmp_path, routed("        - {id: ann, weight: 100}", pool=sla))
    flow.start_worker(LEADFLOW_RULES=str(rules))
    s = flow.settings
    opportunity_id = ids.opportunity_id("R1")
    flow.produce(
        [upsert("R1", "R1-u", company="Old", email="old@erase.example"), activity("R1", "R1-d", "demo_request")]
    )
    flow.read(s.topic_routing_decisions, 1, timeout=90)
    flow.produce([_erased("R1", "R1-x")])
    flow.read(s.topic_routing_decisions, 3)  # the tombstones: the lead step's, then the pool owner's
    # sent again and converted again after its erasure: the same opportunity id, a new answer and SLA clock
    flow.produce([upsert("R1", "R1-u2", company="New", email=EMAIL), activity("R1", "R1-d2", "demo_request")])
    assert flow.read(s.topic_routing_decisions, 4)[3].json["lead_id"] == "R1"
    notice = next(r.value for r in _records(flow, s.topic_sla) if r.value and b'"erased"' in r.value)

    producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    try:  # the first erasure's notice read again (as Kafka delivers a record again), by the pools and the clock
        for partition in range(len(producer.partitions_for(s.topic_route_requests))):
            producer.send(s.topic_route_requests, key=opportunity_id.encode(), value=notice, partition=partition)
        producer.send(s.topic_sla, key=opportunity_id.encode(), value=notice)
        producer.flush()
        flow.produce([upsert("R2", "R2-u", company="Next"), activity("R2", "R2-d", "demo_request")])
        flow.read(s.topic_routing_decisions, 5)  # the pool's partition has read the notice: R2 came after it
        accepted = {"event_type": "opportunity.accepted", "opportunity_id": opportunity_id, "accepted_by": "ann"}
        producer.send(s.topic_feedback, key=b"crm", value=orjson.dumps(accepted))
        producer.flush()
    finally:
        producer.close()
    clock = _newest_when(flow, "sla-state-changelog", opportunity_id.encode(), lambda v: b'"accepted":true' in v)
    assert orjson.loads(clock)["pool"] == "ae"  # the clock the lead's new conversion started, not a new one
    answers = _latest_per_key(flow, _topic(flow, "route-done-changelog"))
    [answer] = [v for (_, k), v in answers.items() if k == f"{opportunity_id}#1@ae".encode()]
    assert answer is not None
    assert EMAIL.encode() in answer  # the new answer stays


def _newest_when(flow: Flow, short: str, key: bytes, ready: Callable[[bytes], bool]) -> bytes:
    """The newest value of ``key`` in a topic, once ``ready`` says it is the one awaited."""
    deadline = time.monotonic() + 60
    while True:
        newest = [v for (_, k), v in _latest_per_key(flow, _topic(flow, short)).items() if k == key]
        if newest and newest[0] is not None and ready(newest[0]):
            return newest[0]
        assert time.monotonic() < deadline, f"{short}: {key!r} is {newest}"
        time.sleep(0.5)
