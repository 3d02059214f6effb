"""Record batches aiokafka cannot read: garbage header keys, corrupt compressed payloads (worker/stream/_fetch.py).

The batches are built with aiokafka's own record builder, the way a producer writes them, then read through
aiokafka's fetcher classes as the worker installs them.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from worker.stream import _fetch


class _Bytes(str):
    """A header key that a producer writes as bytes that are not UTF-8 (Kafka accepts any)."""

    __slots__ = ()

    def encode(self, *_args: Any, **_kwargs: Any) -> bytes:  # type: ignore[override]
        return b"\xff\xfe-" + str.encode(self)


def _batch(base_offset: int, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]], codec: int = 0) -> bytes:
    builder = _DefaultRecordBatchBuilderPy(2, codec, 0, -1, -1, -1, 1 << 20)
    for i, (key, value, headers) in enumerate(records):
        builder.append(i, 1_700_000_000_000 + i, key, value, headers)  # type: ignore[arg-type]
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)
    return bytes(raw)


def _read(data: bytes, fetch_offset: int = 0) -> list[Any]:
    _fetch.install()
    records = fetcher.MemoryRecords(data)
    unpacked = fetcher.PartitionRecords(TopicPartition("leads", 0), records, [], fetch_offset, None, None, True, 0)
    return list(unpacked)


def test_a_header_key_that_is_not_utf8_costs_nothing_the_records_arrive_byte_for_byte() -> None:
    data = _batch(0, [(b"L1", b"one", [])])
    data += _batch(1, [(b"L1", b"two", [("fine", b"x")]), (b"L1", b"\x00three", [(_Bytes("bad"), b"y")])])
    data += _batch(3, [(b"L2", b"four", [])])
    got = _read(data)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (0, b"L1", b"one"),
        (1, b"L1", b"two"),
        (2, b"L1", b"\x00three"),
        (3, b"L2", b"four"),
    ]
    assert got[2].headers == (("\ufffd\ufffd-bad", b"y"),)
    assert all(_fetch.unreadable(r) is None for r in got)


def test_plain_aiokafka_would_raise_on_that_batch_for_ever() -> None:
    """The reason for worker/stream/_fetch.py: without it, the same bytes stop the consumer (a regression guard)."""
    data = _batch(0, [(b"L1", b"x", [(_Bytes("bad"), b"y")])])
    with pytest.raises(UnicodeDecodeError):
        list(_fetch._MemoryRecords(data).next_batch())  # aiokafka's own classes, as they come


def test_a_corrupt_compressed_batch_becomes_one_marker_and_the_next_batch_is_read() -> None:
    values = [(b"L1", b"value %d " % i * 20, []) for i in range(10)]
    broken = bytearray(_batch(0, values, codec=4))  # zstd
    assert struct.unpack_from(">h", broken, 21)[0] & 0x07 == 4, (
        "the builder did not compress: make the values more repetitive"
    )
    broken[-8:] = b"\x00" * 8  # the end of the compressed payload
    struct.pack_into(">I", broken, 17, calc_crc32c(bytes(broken[21:])))  # a checksum that matches: not the wire
    data = bytes(broken) + _batch(10, [(b"L2", b"after", [])])
    got = _read(data)
    marker, after = got
    error = _fetch.unreadable(marker)
    assert error is not None
    assert "records at offsets 0 to 9 of leads[0] cannot be read" in error
    assert (marker.offset, marker.key, marker.value) == (0, None, None)
    assert (after.offset, after.value) == (10, b"after")


def test_a_batch_whose_checksum_does_not_match_is_a_marker() -> None:
    broken = bytearray(_batch(5, [(b"L1", b"x", [])]))
    broken[-1] ^= 0xFF
    (marker,) = _read(bytes(broken), fetch_offset=5)
    assert "checksum does not match" in (_fetch.unreadable(marker) or "")


def test_lenient_records_reads_every_codec_aiokafka_writes() -> None:
    records = [(b"k%d" % i, b"some value that compresses " * 5, [("h", b"v")]) for i in range(20)]
    for codec in (0, 1, 2, 3, 4):
        read = list(_fetch.lenient_records(_batch(100, records, codec)))
        assert [(offset, key, value) for offset, _, key, value, _ in read] == [
            (100 + i, k, v) for i, (k, v, _) in enumerate(records)
        ]
