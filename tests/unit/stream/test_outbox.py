"""The Outbox waits out a broker that is away: it retries, counts the retries, and says when the batch went out."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from worker.exceptions import EventError
from worker.settings import Settings
from worker.stream._outbox import Message, Outbox
from worker.stream.metrics import Metrics


class _Flaky:
    """A BatchSender whose broker is away for the first ``failures`` sends."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def send(self, messages: list[Message]) -> dict[tuple[str, int], int]:
        self.calls += 1
        if self.calls <= self.failures:
            msg = "Connection at 127.0.0.1:9092 closed"
            raise KafkaConnectionError(msg)
        return {("decisions", 0): len(messages) - 1}


def test_a_broker_away_is_waited_for_and_logged_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    outbox = Outbox(Settings(), Metrics(registry))
    flaky = _Flaky(failures=2)
    outbox.senders["outputs"] = flaky  # type: ignore[assignment]
    messages = [Message("decisions", b"L-1", b"{}"), Message("decisions", b"L-2", b"{}")]
    with caplog.at_level(logging.INFO, logger="worker.stream._outbox"):
        offsets = asyncio.run(outbox.send(messages))
    assert offsets == {("decisions", 0): 1}
    assert flaky.calls == 3
    assert registry.get_sample_value("leadflow_send_retries_total") == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "KafkaConnectionError" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in warnings)
    assert caplog.records[-1].getMessage().startswith("sent 2 records after 2 failed attempts")


class _Strict:
    """A BatchSender whose broker refuses any record value over ``limit`` bytes (its message.max.bytes)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[Message] = []

    async def send(self, messages: list[Message]) -> dict[tuple[str, int], int]:
        if any(m.value is not None and len(m.value) > self.limit for m in messages):
            msg = "The request included a message larger than the max message size the server will accept"
            raise MessageSizeTooLargeError(msg)
        self.sent += messages
        return {("dlq", 0): len(messages) - 1}


def test_a_dead_letter_the_broker_refuses_as_too_large_goes_without_its_value() -> None:
    registry = CollectorRegistry()
    settings = Settings(topic_dlq="dlq")
    outbox = Outbox(settings, Metrics(registry))
    strict = _Strict(limit=500_000)
    outbox.senders["outputs"] = strict  # type: ignore[assignment]
    record = _Record(b"L-1", b"x" * 1_000_000)
    messages = [Message("decisions", b"L-2", b"{}"), *outbox.dead_letters([(record, _ERROR)])]
    asyncio.run(outbox.send(messages))
    decision, letter = strict.sent
    assert decision == messages[0]
    assert (letter.topic, letter.key, letter.value) == ("dlq", b"L-1", None)
    headers = dict(letter.headers or [])
    assert headers["leadflow.value_omitted"] == b"1000000"
    assert headers["leadflow.source_offset"] == b"7"
    assert headers["leadflow.reason"] == b"too_large"


class _Record:
    def __init__(self, key: bytes, value: bytes) -> None:
        self.key, self.value, self.topic, self.partition, self.offset = key, value, "leads", 0, 7


_ERROR = EventError("record value is 1,000,000 bytes, over the limit", reason="too_large")
