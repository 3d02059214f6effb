"""Reading record batches that aiokafka cannot: a producer's bad bytes must cost one dead letter, not the consumer.

aiokafka decodes every header key of a record as UTF-8 while it iterates a fetched batch. One record whose header
key is not UTF-8 (Kafka itself accepts any bytes there) raises ``UnicodeDecodeError`` out of ``getmany``, on
every fetch of that position, for ever: the worker would stop on that offset. A batch whose compressed payload
is corrupt does the same.

:func:`install` replaces aiokafka's per-partition record unpacking with one that survives both. When aiokafka
fails inside a batch, that batch is read again here from its raw bytes with header keys decoded leniently (as
``'replace'`` does), so its records arrive with their key and value byte for byte. When even that fails (a
corrupt or unknown compressed payload), one :func:`unreadable` marker record stands for the batch's remaining
offsets: the worker sends it to the dead-letter topic with the reason ``unreadable`` and the error, and reads on.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import Any

from aiokafka import codec
from aiokafka.consumer import fetcher
from aiokafka.record.util import decode_varint_py
from aiokafka.structs import ConsumerRecord

__all__ = ["UNREADABLE", "install", "lenient_records", "unreadable"]

logger = logging.getLogger(__name__)

UNREADABLE = "leadflow.unreadable"
"""The header key of a marker record (compared by identity: a header from the wire is never this object)."""

_HEADER = struct.Struct(">qiibIhiqqqhii")  # the record batch header of message format v2 (61 bytes)
_CODECS = {1: codec.gzip_decode, 2: codec.snappy_decode, 3: codec.lz4_decode, 4: codec.zstd_decode}


def unreadable(record: Any) -> str | None:
    """The error of a marker record standing for records that could not be read, or None for a real record."""
    headers = record.headers
    if headers and headers[0][0] is UNREADABLE:
        error: bytes = headers[0][1]
        return error.decode()
    return None


def lenient_records(batch: bytes) -> Iterator[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """``(offset, timestamp ms, key, value, headers)`` of every record of one v2 record batch (its raw bytes).

    Header keys that are not UTF-8 are decoded with replacement characters; keys and values are untouched. Raises
    ValueError when the batch is not one (too short, another message format, an unknown codec, a truncated
    record).
    """
    if len(batch) < _HEADER.size:
        msg = f"a record batch of {len(batch)} bytes is shorter than its header"
        raise ValueError(msg)
    base_offset, _, _, magic, _, attributes, _, base_time, max_time, _, _, _, count = _HEADER.unpack_from(batch)
    if magic != 2:
        msg = f"message format v{magic} is not read leniently"
        raise ValueError(msg)
    payload = batch[_HEADER.size :]
    codec_id = attributes & 0x07
    if codec_id:
        decode = _CODECS.get(codec_id)
        if decode is None:
            msg = f"unknown compression codec {codec_id}"
            raise ValueError(msg)
        payload = bytes(decode(payload))
    log_append_time = bool(attributes & 0x08)
    buffer = bytearray(payload)
    pos = 0
    for _ in range(count):
        length, pos = decode_varint_py(buffer, pos)
        end = pos + length
        if length < 0 or end > len(buffer):
            msg = f"a record of {length} bytes runs past the end of its batch"
            raise ValueError(msg)
        pos += 1  # attributes
        time_delta, pos = decode_varint_py(buffer, pos)
        offset_delta, pos = decode_varint_py(buffer, pos)
        key, pos = _bytes(buffer, pos)
        value, pos = _bytes(buffer, pos)
        header_count, pos = decode_varint_py(buffer, pos)
        headers = []
        for _ in range(max(header_count, 0)):
            name, pos = _bytes(buffer, pos)
            header_value, pos = _bytes(buffer, pos)
            headers.append(((name or b"").decode("utf-8", "replace"), header_value or b""))
        if pos != end:
            msg = f"a record's fields take {pos - end + length} bytes, not the {length} its length says"
            raise ValueError(msg)
        yield base_offset + offset_delta, max_time if log_append_time else base_time + time_delta, key, value, headers


def _bytes(buffer: bytearray, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint_py(buffer, pos)
    if size < 0:
        return None, pos
    if pos + size > len(buffer):
        msg = f"a field of {size} bytes runs past the end of its record"
        raise ValueError(msg)
    return bytes(buffer[pos : pos + size]), pos + size


def _raw_batch(data: bytes, base_offset: int) -> bytes | None:
    """The raw bytes of the batch that starts at ``base_offset`` in a fetch response's record set."""
    pos = 0
    while pos + 12 <= len(data):
        offset, length = struct.unpack_from(">qi", data, pos)
        if offset == base_offset:
            return data[pos : pos + 12 + length]
        pos += 12 + max(length, 0)
    return None


class _KeptRecords:
    """aiokafka's MemoryRecords, keeping the raw bytes for the batches it cannot read."""

    __slots__ = ("data", "records")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.records = _MemoryRecords(data)

    def size_in_bytes(self) -> int:
        size: int = self.records.size_in_bytes()
        return size

    def has_next(self) -> bool:
        more: bool = self.records.has_next()
        return more

    def next_batch(self) -> Any:
        return self.records.next_batch()


class _TolerantPartitionRecords(fetcher.PartitionRecords):  # type: ignore[misc]  # aiokafka is untyped here
    """aiokafka's record unpacking (read-uncommitted, as leadflow reads) that survives a batch it cannot read."""

    def _unpack_records(self) -> Iterator[ConsumerRecord[Any, Any]]:
        tp = self._tp
        records = self._records
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                yield from self._lenient(batch, "its checksum does not match (corrupt on the wire or on disk)")
                continue
            if batch.is_control_batch:
                self.next_fetch_offset = batch.next_offset
                continue
            try:
                for record in batch:
                    if record.offset < self.next_fetch_offset:
                        continue
                    consumer_record = self._consumer_record(tp, record)
                    self.next_fetch_offset = record.offset + 1
                    yield consumer_record
            except Exception as exc:  # whatever aiokafka raised, the batch is read another way
                yield from self._lenient(batch, f"{type(exc).__name__}: {exc}")
            self.next_fetch_offset = batch.next_offset

    def _lenient(self, batch: Any, why: str) -> Iterator[ConsumerRecord[Any, Any]]:
        """The batch's remaining records read here, or one marker standing for them."""
        tp = self._tp
        first = self.next_fetch_offset
        raw = _raw_batch(self._records.data, batch.base_offset) if isinstance(self._records, _KeptRecords) else None
        if raw is not None:
            try:
                read = [r for r in lenient_records(raw) if r[0] >= first]
            except Exception as exc:  # not readable either way: the marker below says both
                why = f"{why}; read leniently: {type(exc).__name__}: {exc}"
            else:
                # a producer that always sends such headers would say this once per batch: worker.stream._logs holds
                # the repeats back (RATE_LIMITED)
                logger.warning("%s[%d]: read the batch at offset %d leniently (%s)", tp.topic, tp.partition, first, why)
                for offset, timestamp, key, value, headers in read:
                    self.next_fetch_offset = offset + 1
                    yield ConsumerRecord(
                        tp.topic,
                        tp.partition,
                        offset,
                        timestamp,
                        batch.timestamp_type,
                        key,
                        value,
                        None,
                        -1 if key is None else len(key),
                        -1 if value is None else len(value),
                        tuple(headers),
                    )
                self.next_fetch_offset = batch.next_offset
                return
        last = batch.next_offset - 1
        message = f"records at offsets {first} to {last} of {tp.topic}[{tp.partition}] cannot be read: {why}"
        logger.error("%s; they go to the dead-letter topic as one record", message)
        self.next_fetch_offset = batch.next_offset
        marker = ((UNREADABLE, message.encode()),)
        yield ConsumerRecord(tp.topic, tp.partition, first, -1, 0, None, None, None, -1, -1, marker)


_MemoryRecords = fetcher.MemoryRecords


def install() -> None:
    """Make every aiokafka consumer of this process read batches tolerantly (idempotent)."""
    fetcher.MemoryRecords = _KeptRecords
    fetcher.PartitionRecords = _TolerantPartitionRecords
