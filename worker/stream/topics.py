"""Create the topics leadflow reads and writes, with the partition count the worker expects."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from worker.exceptions import ConfigError
from worker.settings import Settings

__all__ = ["ensure_accounts_topic", "ensure_control_topic", "ensure_topics", "topic_names", "unreachable"]

logger = logging.getLogger(__name__)


def topic_names(settings: Settings) -> list[str]:
    """The topics the worker reads and writes with ``settings.partitions`` partitions: leads, the outputs, the
    feedback topic and the two internal routing topics (the control and accounts topics are compacted, see below)."""
    return [
        settings.topic_leads,
        settings.topic_decisions,
        settings.topic_opportunities,
        settings.topic_dlq,
        settings.topic_routing_decisions,
        settings.topic_feedback,
        settings.topic_route_requests,
        settings.topic_sla,
    ]


def ensure_control_topic(settings: Settings) -> None:
    """Create the control topic if it is missing: one partition (one order for every worker), compacted."""
    _ensure_compacted(settings, settings.topic_control, 1, "control topic")


def ensure_accounts_topic(settings: Settings) -> None:
    """Create the accounts topic if it is missing (compacted; the CRM side publishes one record per account)."""
    _ensure_compacted(settings, settings.topic_accounts, settings.partitions, "accounts topic")


def _ensure_compacted(settings: Settings, name: str, partitions: int, what: str) -> None:
    admin = _admin(settings)
    try:
        if name not in set(admin.list_topics()):
            topic = NewTopic(name, partitions, 1, topic_configs={"cleanup.policy": "compact"})
            try:
                admin.create_topics([topic])
                logger.info("created %s %r (compacted)", what, name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> None:
    """Create missing topics with ``settings.partitions`` partitions; refuse a leads topic of another size.

    The lead-state table is co-partitioned with the leads topic, so their partition counts must match.
    """
    wanted = list(names) if names is not None else topic_names(settings)
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, settings.partitions, 1)])
                logger.info("created topic %r with %d partitions", name, settings.partitions)
            except TopicAlreadyExistsError:
                pass
        if settings.topic_leads in existing:
            described = admin.describe_topics([settings.topic_leads])
            count = len(described[0].get("partitions", [])) if described else 0
            if count and count != settings.partitions:
                msg = (
                    f"topic {settings.topic_leads!r} has {count} partitions but LEADFLOW_PARTITIONS is "
                    f"{settings.partitions}; set LEADFLOW_PARTITIONS={count} so lead state stays co-partitioned"
                )
                raise ConfigError(msg)
    finally:
        admin.close()


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, client_id=f"{settings.app_id}-admin", **settings.kafka_auth()
    )


def unreachable(settings: Settings, timeout: float = 3.0) -> str | None:
    """Why no bootstrap server accepts a TCP connection, or None when one does.

    Checked before creating a Kafka client, which otherwise retries for a long time and leaves sockets open.
    """
    errors = []
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return None
        except (OSError, ValueError) as exc:
            errors.append(f"{server}: {exc}")
    return "; ".join(errors)
