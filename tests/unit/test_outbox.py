"""The Outbox waits out a broker that is away: it retries, counts the retries, and says when the batch went out."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from worker._sender import Message
from worker._stages import Outbox
from worker.metrics import Metrics
from worker.settings import Settings


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
    with caplog.at_level(logging.INFO, logger="worker._stages"):
        offsets = asyncio.run(outbox.send(messages))
    assert offsets == {("decisions", 0): 1}
    assert flaky.calls == 3
    assert registry.get_sample_value("leadflow_send_retries_total") == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "KafkaConnectionError" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in warnings)
    assert caplog.records[-1].getMessage().startswith("sent 2 records after 2 failed attempts")
