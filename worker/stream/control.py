"""The control topic: rulesets and models published once and picked up by every worker of a cluster.

``leadflow rules publish FILE`` (``leadflow model publish FILE``) validates a ruleset (a model) and writes its text
to the control topic (one partition, compacted, key ``ruleset`` or ``model``). Each worker reads the whole topic
itself, without a consumer group, so that every worker sees every record in the same order: at start-up it takes
the newest valid ruleset and model there (they win over the files), then it follows the topic and switches as new
records arrive (see :mod:`worker.stream.reload`).

A record's value is JSON::

    {"kind": "ruleset", "name": "rules.yaml", "text": "<the YAML or model JSON>", "sha256": "<of text>",
     "published_at": "2026-11-23T10:00:00+00:00"}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from worker.artifacts import KINDS, Artifact, ArtifactKind, compile_artifact
from worker.exceptions import ConfigError, EventError, ModelError, RulesetError
from worker.settings import Settings
from worker.stream._fetch import unreadable
from worker.stream.reader import RawRecord, follow_topic, read_topic

__all__ = [
    "ControlRecord",
    "ControlSnapshot",
    "decode_record",
    "encode_record",
    "follow_control",
    "publish",
    "read_control",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """One decoded control record: what it carries and where it sits in the topic."""

    kind: ArtifactKind
    name: str
    text: str
    offset: int


def encode_record(kind: ArtifactKind, text: str, name: str, published_at: dt.datetime | None = None) -> bytes:
    """The value of a control record that carries a ruleset's or a model's text (its key is the kind)."""
    at = published_at or dt.datetime.now(dt.UTC)
    return orjson.dumps(
        {
            "kind": kind,
            "name": name,
            "text": text,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "published_at": at.isoformat(),
        }
    )


def decode_record(value: bytes | None, offset: int) -> ControlRecord:
    """Decode a control record's value; a record that is not one raises EventError saying what is wrong."""
    where = f"control record at offset {offset}"
    if value is None:
        msg = f"{where} has no value"
        raise EventError(msg, reason="tombstone")
    try:
        data: Any = orjson.loads(value)
    except orjson.JSONDecodeError as exc:  # depth-bounded, no NaN: whatever the bytes, it says so and returns
        msg = f"{where} is not JSON: {exc}"
        raise EventError(msg, reason="not_json") from exc
    if not isinstance(data, dict):
        msg = f"{where} must be a JSON object, got {type(data).__name__}"
        raise EventError(msg, reason="not_an_object")
    kind, text, name = data.get("kind"), data.get("text"), data.get("name", "<control>")
    if kind not in KINDS:
        msg = f"{where} has kind {str(kind)[:80]!r}; expected one of {list(KINDS)}"
        raise EventError(msg, reason="schema_violation")
    if not isinstance(text, str) or not isinstance(name, str):
        msg = f"{where} needs 'text' and 'name' as strings"
        raise EventError(msg, reason="schema_violation")
    digest = data.get("sha256")
    if digest is not None and digest != hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest():
        msg = f"{where}: 'sha256' does not match its text (the record was altered or truncated)"
        raise EventError(msg, reason="schema_violation")
    return ControlRecord(kind, name[:200], text, offset)


def publish(settings: Settings, kind: ArtifactKind, path: Path) -> str:
    """Validate the ruleset or model at ``path`` and publish it on the control topic; returns its version.

    What does not validate is never published: the RulesetError or ModelError says why.
    """
    from worker.stream.topics import check_reachable, ensure_control_topic

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the {kind} file {str(path)!r}: {exc}"
        raise ConfigError(msg) from exc
    version = compile_artifact(kind, text, str(path)).version
    check_reachable(settings, f"publish to the control topic {settings.topic_control!r}")
    where = f"the control topic {settings.topic_control!r} at {settings.broker_url}"
    try:
        ensure_control_topic(settings)
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            client_id=f"{settings.app_id}-publisher",
            max_request_size=max(len(text) * 2 + 4096, 1024 * 1024),
            compression_type=settings.compression_type,
            **settings.kafka_auth(),
        )
        try:
            value = encode_record(kind, text, path.name)
            producer.send(settings.topic_control, key=kind.encode(), value=value).get(timeout=30)
        finally:
            producer.close()
    except KafkaError as exc:
        msg = f"cannot publish to {where}: {exc!r}; check LEADFLOW_BROKER_URL (or --broker)"
        raise ConfigError(msg) from exc
    return version


@dataclass(frozen=True, slots=True)
class ControlSnapshot:
    """What the control topic held at start-up: its records in order, and where to follow on from."""

    records: list[ControlRecord | EventError]
    next_offsets: dict[int, int]

    def newest_valid(self, kind: ArtifactKind) -> tuple[ControlRecord | None, Artifact | None, list[str]]:
        """The newest record of ``kind`` that compiles (and what it compiled to), and why newer ones were refused."""
        refused: list[str] = []
        for record in reversed(self.records):
            if isinstance(record, EventError) or record.kind != kind:
                continue
            try:
                artifact = compile_artifact(kind, record.text, f"{record.name} (control offset {record.offset})")
            except (RulesetError, ModelError) as exc:
                refused.append(str(exc))
                continue
            except Exception as exc:  # a compiler bug must not stop start-up: the record is refused like a bad one
                refused.append(f"control offset {record.offset}: {type(exc).__name__}: {exc}")
                continue
            return record, artifact, refused
        return None, None, refused

    @property
    def undecodable(self) -> list[EventError]:
        """The records that are not control records at all."""
        return [r for r in self.records if isinstance(r, EventError)]


def read_control(settings: Settings) -> ControlSnapshot:
    """Read the control topic from the beginning to its end (no consumer group, nothing committed)."""
    records, next_offsets = read_topic(settings, settings.topic_control, "control")
    return ControlSnapshot([_decoded(r) for r in records], next_offsets)


def _decoded(record: RawRecord) -> ControlRecord | EventError:
    error = unreadable(record.source) if record.source is not None else None
    if error is not None:
        return EventError(error, reason="unreadable")
    try:
        return decode_record(record.value, record.offset)
    except EventError as exc:
        return exc


async def follow_control(
    settings: Settings,
    start: dict[int, int],
    on_record: Callable[[ControlRecord | EventError], object],
) -> None:
    """Read control records from ``start`` on, for ever, handing each to ``on_record`` in order."""

    def decode(record: RawRecord) -> None:
        on_record(_decoded(record))

    await follow_topic(settings, settings.topic_control, "control", start, decode)
