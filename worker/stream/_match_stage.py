"""The match step of the Faust shell: which lead claimed each match key first (duplicates, see docs/RULES.md).

Leads are partitioned by lead id, so two leads of one person usually live on different workers. Their claims of a
match key go to the internal topic ``<app_id>-match`` keyed by the key (as routing re-keys requests by pool), so
one worker owns each key: its ``match-keys`` table (changelogged) holds the lead that claimed the key first. Each
claim is answered with a ``lead.matched`` event written to ``leads`` on the partition the claim names (the one that
holds the claiming lead's own records), so the answer reaches the lead's state whatever partitioner its producers
use. Like every step: decide, send, store, then ack; a claim processed again gets the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.batch import RecordLike
from worker.rules.duplicates import match_batch
from worker.settings import Settings
from worker.stream._outbox import Message, Outbox
from worker.stream._stage import BatchStage, Prepared
from worker.stream._tables import Update
from worker.stream.metrics import Metrics

__all__ = ["MatchStage"]


class MatchStage(BatchStage):
    """Owns the match keys of its partitions of the match topic: answers claims, first claimant survives."""

    source = "match"

    def __init__(self, settings: Settings, outbox: Outbox, metrics: Metrics, table: object) -> None:
        super().__init__(outbox, metrics, {"match-keys": table})
        self.settings = settings

    def decide(self, messages: Sequence[RecordLike]) -> Prepared:
        partition_of = {m.key: m.partition for m in messages if m.key is not None}

        def load(key: str) -> bytes | None:
            raw = key.encode()
            return self.load("match-keys", raw, partition_of[raw])

        out = match_batch([(m.key, m.value) for m in messages], load, self.settings.partitions)
        failures = [(messages[i], error) for i, error in out.failures]
        topic = self.settings.topic_leads
        outputs = [Message(topic, lead_id, answer, partition) for partition, lead_id, answer in out.answers]
        outputs += self.outbox.dead_letters(failures)
        writes: dict[str, list[Update]] = {
            "match-keys": [(k.encode(), v, partition_of[k.encode()]) for k, v in out.entries.items()]
        }

        def done() -> None:
            m = self.metrics
            m.match_claims.labels("survivor").inc(len(out.answers) - out.duplicates)
            m.match_claims.labels("duplicate").inc(out.duplicates)

        return Prepared(outputs, writes, done, failures)
