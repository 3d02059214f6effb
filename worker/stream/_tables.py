"""The Faust tables' stores, read and written a batch at a time: what every stage of the shell stores its state in."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import rocksdict
from faust.streams import _current_event  # the context variable Faust's stores read
from faust.types import TP

from worker.stream._outbox import Message, Outbox

__all__ = ["TableStore", "Update"]

Update = tuple[bytes, bytes | None, int]
"""``(key, value, partition)``: one state to store; a None value deletes the key (a tombstone in the changelog)."""


class _PartitionOf:
    """Stands in for a Faust event where the store only needs ``event.message.partition``."""

    __slots__ = ("__weakref__", "message", "partition")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.message = self


class TableStore:
    """A Faust table's store, read and written a batch at a time, by partition.

    With RocksDB each partition has its own database: reads go straight to it and writes go in one write batch
    per partition. Other stores (memory, in tests) are used through Faust's mapping interface, which finds the
    partition through Faust's ``current_event`` context variable; that variable holds a weak reference, so the
    stand-ins are kept here for as long as the batch.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.store = table.data
        self._rocksdb = hasattr(self.store, "_db_for_partition")
        self._holders: dict[int, _PartitionOf] = {}

    def get(self, key: bytes, partition: int) -> bytes | None:
        if self._rocksdb:
            value: bytes | None = self.store._db_for_partition(partition).get(key)
            return value
        self._use(partition)
        stored: bytes | None = self.store.get(key)
        return stored

    def put_many(self, updates: Sequence[Update]) -> None:
        """Store ``(key, value, partition)`` triples (a None value deletes the key)."""
        if self._rocksdb:
            batches: dict[int, Any] = {}
            for key, value, partition in updates:
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            for partition, batch in batches.items():
                self.store._db_for_partition(partition).write(batch)
            return
        for key, value, partition in updates:
            self._use(partition)
            if value is None:
                self.store.pop(key, None)
            else:
                self.store[key] = value

    def _use(self, partition: int) -> None:
        holder = self._holders.get(partition)
        if holder is None:
            holder = self._holders[partition] = _PartitionOf(partition)
        _current_event.set(weakref.ref(holder))  # type: ignore[arg-type]  # the store reads .message.partition

    async def write(self, outbox: Outbox, updates: Sequence[Update]) -> None:
        """Store the updates locally and in the table's changelog, and note the changelog offsets as persisted."""
        if not updates:
            return
        self.put_many(updates)
        changelog = self.table.changelog_topic.get_topic_name()
        offsets = await outbox.send([Message(changelog, k, v, p) for k, v, p in updates], lane="changelog")
        for (topic, partition), offset in offsets.items():
            self.store.set_persisted_offset(TP(topic, partition), offset)
