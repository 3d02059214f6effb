"""Kafka's codecs: both clients read batches in every codec, and every producer leadflow creates uses the setting."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatch as AioBatch
from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBuilder
from kafka.record.default_records import DefaultRecordBatch as KpBatch
from kafka.record.default_records import DefaultRecordBatchBuilder as KpBuilder
from prometheus_client import CollectorRegistry

from worker.settings import Settings

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
RECORDS = [
    (f"L-{i}".encode(), b'{"event_type": "lead.activity", "activity": {"type": "page_view"}}' * 3) for i in range(50)
]


@pytest.mark.parametrize("codec", CODECS)
def test_each_client_reads_the_other_clients_batches_in_every_codec(codec: str) -> None:
    """aiokafka (Faust's consumer, the followers) and kafka-python (the start-up readers) have every codec's library."""
    aio = AioBuilder(2, CODECS[codec], 0, -1, -1, 0, 1024 * 1024)
    kp = KpBuilder(2, CODECS[codec], 0, -1, -1, 0, 1024 * 1024)
    for offset, (key, value) in enumerate(RECORDS):
        aio.append(offset, None, key=key, value=value, headers=[])
        kp.append(offset, None, key, value, [])
    from_aio, from_kp = bytes(aio.build()), bytes(kp.build())
    assert len(from_aio) < sum(len(v) for _, v in RECORDS) / 5  # compressed, not sent as it was
    for batch in (KpBatch(from_aio), AioBatch(from_aio), KpBatch(from_kp), AioBatch(from_kp)):
        assert batch.compression_type == CODECS[codec]
        assert [(r.key, r.value) for r in batch] == RECORDS


class Recorder:
    """Stands in for a producer class: records the keyword arguments of each one built."""

    def __init__(self) -> None:
        self.built: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.built.append(kwargs)
        return self

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def send(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def get(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("codec", "expected"), [("lz4", "lz4"), ("none", None)])
def test_every_producer_leadflow_creates_uses_leadflow_compression(
    codec: str, expected: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from worker.core import Engine
    from worker.rules import default_ruleset_path, load_ruleset
    from worker.scoring import default_model_path, load_model
    from worker.stream import _outbox as _stages
    from worker.stream import control, topics
    from worker.stream.app import build_app
    from worker.stream.metrics import Metrics
    from worker.tools import produce

    settings = Settings(compression=codec, state_dir=tmp_path / "state")  # type: ignore[arg-type]
    recorder = Recorder()
    for module, name in ((produce, "KafkaProducer"), (control, "KafkaProducer"), (_stages, "AIOKafkaProducer")):
        monkeypatch.setattr(module, name, recorder)
    monkeypatch.setattr(topics, "unreachable", lambda _settings: None)
    monkeypatch.setattr(topics, "ensure_control_topic", lambda _settings: None)

    produce.make_producer(settings)  # leadflow produce, the demo
    control.publish(settings, "ruleset", default_ruleset_path())  # leadflow rules publish
    asyncio.run(_stages.Outbox(settings, Metrics(CollectorRegistry())).start())  # the worker's two lanes
    assert [kwargs["compression_type"] for kwargs in recorder.built] == [expected] * 4
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    app = build_app(settings, engine, CollectorRegistry())  # Faust's own producer
    assert app.conf.producer_compression_type == expected
