"""Create the topics leadflow reads and writes, with the partition count the worker expects."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from worker.exceptions import ConfigError
from worker.settings import Settings

__all__ = ["ensure_topics", "topic_names"]

logger = logging.getLogger(__name__)


def topic_names(settings: Settings) -> list[str]:
    """The leads topic and the three output topics."""
    return [settings.topic_leads, settings.topic_decisions, settings.topic_opportunities, settings.topic_dlq]


def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> None:
    """Create missing topics with ``settings.partitions`` partitions; refuse a leads topic of another size.

    The lead-state table is co-partitioned with the leads topic, so their partition counts must match.
    """
    wanted = list(names) if names is not None else topic_names(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id=f"{settings.app_id}-admin")
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
