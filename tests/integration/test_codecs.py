"""Every Kafka codec on a real broker: compressed lead events, accounts, rulesets and feedback are all read, and the
worker's outputs are compressed with LEADFLOW_COMPRESSION and readable.

One worker per codec, shared by the tests of that codec: it writes its outputs in that codec, and everything it
reads is compressed in that codec too, by librdkafka (confluent-kafka), kafka-python and aiokafka producers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from kafka import KafkaProducer

from tests.integration.conftest import Flow, Output, activity, upsert, write_rules
from tests.routed_rules import routed
from worker.settings import Settings
from worker.stream.control import publish
from worker.stream.topics import ensure_accounts_topic, ensure_control_topic, ensure_topics
from worker.tools.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # name → the codec id in a record batch's attributes
CLIENTS = ("librdkafka", "kafka-python", "aiokafka")
MEMBERS = "        - {id: ann, weight: 100}\n        - {id: bob, weight: 100}"
ACME = {"name": "Acme GmbH", "owner_id": "005-ACME", "website": "https://www.acme.example"}
GLOBEX = {"name": "Globex", "owner_id": "005-GLOBEX", "domains": ["globex.example"]}
Records = list[tuple[bytes | None, bytes]]


def send(client: str, codec: str, bootstrap: str, topic: str, records: Records) -> None:
    """Send ``records`` with one client, compressed with ``codec``; a linger lets them share record batches."""
    if client == "librdkafka":
        from confluent_kafka import KafkaException, Producer

        failed: list[Any] = []
        config = {"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 20, "acks": "all"}
        producer = Producer({**config, "partitioner": "murmur2_random"})  # the Java client's: as the others
        for key, value in records:
            producer.produce(topic, value, key, on_delivery=lambda error, _msg: error and failed.append(error))
        if producer.flush(30) or failed:
            raise KafkaException(failed[0] if failed else "librdkafka: records left unsent after 30 s")
    elif client == "kafka-python":
        kp = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20, acks="all")
        for key, value in records:
            kp.send(topic, key=key, value=value)
        kp.flush()
        kp.close()
    else:
        asyncio.run(_send_aiokafka(codec, bootstrap, topic, records))


async def _send_aiokafka(codec: str, bootstrap: str, topic: str, records: Records) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def batch_codecs(bootstrap: str, topic: str) -> Counter[int]:
    """How many record batches of ``topic`` the broker serves in each codec (its id), read with a raw Fetch."""
    return asyncio.run(_batch_codecs(bootstrap, topic))


async def _batch_codecs(bootstrap: str, topic: str) -> Counter[int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        client = consumer._client  # no public API shows a batch's attributes
        await client.force_metadata_update()
        codecs: Counter[int] = Counter()
        for partition in sorted(client.cluster.partitions_for_topic(topic) or ()):
            node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            offset, end = 0, None
            while end is None or offset < end:
                request = FetchRequest(10, 0, 64 * 1024 * 1024, 0, [(topic, [(partition, offset, 64 * 1024 * 1024)])])
                response = await client.send(node, request)
                ((_, parts),) = response.topics
                ((_, error, end, *_, data),) = parts
                assert error == 0, f"{topic}[{partition}]: fetch error {error}"
                records = MemoryRecords(data)
                if not records.has_next():
                    break
                while records.has_next():
                    batch = records.next_batch()
                    codecs[batch.compression_type] += 1
                    offset = batch.next_offset
        return codecs
    finally:
        await consumer.stop()


def read_with_librdkafka(bootstrap: str, topic: str, n: int, timeout: float = 30) -> Records:
    """The first ``n`` records of ``topic`` (all partitions) as librdkafka reads them."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as RdTopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        consumer.assign([RdTopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions])
        got: Records = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, f"librdkafka reading {topic}: {message.error()}"
            got.append((message.key(), message.value()))
        return got
    finally:
        consumer.close()


@dataclass
class CodecWorker:
    """A running worker with LEADFLOW_COMPRESSION=codec whose control and accounts topics hold compressed records."""

    codec: str
    flow: Flow

    @property
    def bootstrap(self) -> str:
        return self.flow.broker.bootstrap

    def publish_ruleset(self, version: str) -> None:
        """``leadflow rules publish`` with this codec: the control record goes out compressed."""
        settings = self.flow.settings.model_copy(update={"compression": self.codec})
        assert isinstance(settings, Settings)
        publish(settings, "ruleset", write_rules(self.flow.tmp, routed(MEMBERS, version), f"{version}.yaml"))

    def send(self, client: str, topic: str, records: Records) -> None:
        send(client, self.codec, self.bootstrap, topic, records)

    def read_until(self, topic: str, done: Callable[[list[Output]], bool], timeout: float = 60) -> list[Output]:
        """Everything read from ``topic`` once ``done`` says it is enough."""
        deadline = time.monotonic() + timeout
        got = self.flow.read(topic, 0)
        while not done(got):
            got = self.flow.read(topic, len(got) + 1, timeout=max(0.1, deadline - time.monotonic()))
        return got


@pytest.fixture(scope="module", params=list(CODECS))
def worker(
    request: pytest.FixtureRequest, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CodecWorker]:
    codec: str = request.param
    flow = Flow(broker, tmp_path_factory.mktemp(f"codec-{codec}"))
    w = CodecWorker(codec, flow)
    try:
        s = flow.settings
        ensure_topics(s)
        ensure_control_topic(s)
        ensure_accounts_topic(s)
        # read at start-up by kafka-python (worker.stream.reader.read_topic)
        w.publish_ruleset(f"{codec}-1")
        w.send("kafka-python", s.topic_accounts, [(b"001-ACME", orjson.dumps(ACME))])
        flow.start_worker(LEADFLOW_COMPRESSION=codec)
        flow.wait_metric("leadflow_worker_up", 1, timeout=60)
        yield w
    finally:
        flow.close()


def test_a_compressed_ruleset_and_account_are_read_at_start_up_and_followed_after(worker: CodecWorker) -> None:
    flow, codec = worker.flow, worker.codec
    metrics = flow.metrics()
    assert f'leadflow_ruleset_info{{version="{codec}-1+' in metrics  # the control topic's, over the shipped file
    assert flow.metric("leadflow_accounts_known") == 1
    # read while the worker runs, by aiokafka (worker.stream.reader.follow_topic)
    worker.publish_ruleset(f"{codec}-2")
    worker.send("librdkafka", flow.settings.topic_accounts, [(b"001-GLOBEX", orjson.dumps(GLOBEX))])
    flow.wait_metric("leadflow_reloads_total", 1, kind="ruleset", origin="control", result="applied")
    flow.wait_metric("leadflow_accounts_known", 2)
    assert f'leadflow_ruleset_info{{version="{codec}-2+' in flow.metrics()
    assert flow.metric("leadflow_reloads_total", kind="ruleset", origin="control", result="refused") == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_compressed_lead_events_are_each_decided_once_and_routed(worker: CodecWorker, client: str) -> None:
    flow, prefix = worker.flow, f"{worker.codec}-{client}"
    events: list[dict[str, Any]] = []
    for i in range(20):
        lead_id = f"{prefix}-{i}"
        email = f"jo{i}@acme.example" if i < 2 else f"jo{i}@example.org"  # two of the known account Acme's
        events.append(upsert(lead_id, f"{lead_id}-u", email=email, company=f"Company {i}"))
        events.append(activity(lead_id, f"{lead_id}-v", "page_view"))
        if i < 4:  # four convert: Acme's two go to its owner, the others through the pool (route-requests)
            events.append(activity(lead_id, f"{lead_id}-d", "demo_request"))
    worker.send(client, flow.settings.topic_leads, [(e["lead_id"].encode(), orjson.dumps(e)) for e in events])

    wanted = {e["event_id"] for e in events}
    decided = worker.read_until(flow.settings.topic_decisions, lambda got: wanted <= {o.json["event_id"] for o in got})
    counts = Counter(o.json["event_id"] for o in decided if o.json["event_id"] in wanted)
    assert counts == dict.fromkeys(wanted, 1)

    mine = [f"{prefix}-{i}" for i in range(4)]
    opened = worker.read_until(
        flow.settings.topic_opportunities, lambda got: set(mine) <= {o.json["lead_id"] for o in got}
    )
    owners = {o.json["lead_id"]: o.json["owner_id"] for o in opened if o.json["lead_id"] in mine}
    assert [owners[lead] for lead in mine[:2]] == ["005-ACME", "005-ACME"]
    assert {owners[lead] for lead in mine[2:]} <= {"ann", "bob"}


def test_feedback_compressed_reaches_the_sla_clock(worker: CodecWorker) -> None:
    flow = worker.flow
    accepted = {"event_type": "opportunity.accepted", "opportunity_id": "opp-feedback", "accepted_by": "ann"}
    worker.send("librdkafka", flow.settings.topic_feedback, [(b"opp-feedback", orjson.dumps(accepted))])
    flow.wait_metric("leadflow_sla_accepted_total", 1)


def test_the_outputs_are_in_leadflow_compression_and_every_client_reads_them(worker: CodecWorker) -> None:
    s = worker.flow.settings
    events = [upsert("out-1", "out-1-u", email="ann@example.org"), activity("out-1", "out-1-d", "demo_request")]
    worker.send("kafka-python", s.topic_leads, [(e["lead_id"].encode(), orjson.dumps(e)) for e in events])
    wanted = {"out-1-u", "out-1-d"}
    decided = worker.read_until(s.topic_decisions, lambda got: wanted <= {o.json["event_id"] for o in got})
    worker.read_until(s.topic_opportunities, lambda got: "out-1" in {o.json["lead_id"] for o in got})  # via a pool

    for topic in (s.topic_decisions, s.topic_opportunities, f"{s.app_id}-lead-state-changelog"):
        assert batch_codecs(worker.bootstrap, topic).keys() == {CODECS[worker.codec]}, topic
    # every decision so far (each test's events are all decided before it ends), as kafka-python read them
    assert sorted(read_with_librdkafka(worker.bootstrap, s.topic_decisions, len(decided))) == sorted(
        (o.key, o.value) for o in decided
    )
