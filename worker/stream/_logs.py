"""Repeated log lines, held back: what keeps a broker outage from flooding the worker's log.

While the broker is away, every Kafka client of a worker (the group consumer, the producers, the whole-topic
readers) logs each failed connection, metadata request and fetch, about 150 lines a second in all. The first line of
each kind says what is wrong; the rest say nothing new. :class:`RepeatFilter` lets the first record of a kind (same
logger, level and message template) through, then one per ``interval`` seconds that says how many were held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RATE_LIMITED", "RepeatFilter", "install_repeat_filter"]

RATE_LIMITED = (
    "aiokafka",
    "kafka",
    "worker.stream._outbox",
    "worker.stream._stage",
    "worker.stream._route_stages",
    "worker.stream.reader",
    "worker.stream._fetch",
)  # loggers whose repeats are held back
_MOST_KINDS = 1_000  # kinds remembered; past that the stale ones are forgotten
_DECIDED = "leadflow_repeat_passed"  # the filter's decision, kept on the record


@dataclass
class _Seen:
    shown_at: float
    held_back: int = 0


class RepeatFilter(logging.Filter):
    """Passes a record unless one of the same kind passed less than ``interval`` seconds ago.

    Only warnings and errors of the loggers under ``prefixes`` are limited; everything else passes untouched. The
    record that passes after a pause carries the count of those held back since the last one.
    """

    def __init__(
        self,
        interval: float = 30.0,
        prefixes: tuple[str, ...] = RATE_LIMITED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.prefixes = prefixes
        self.clock = clock
        self._seen: dict[tuple[str, int, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        decided = record.__dict__.get(_DECIDED)
        if decided is None:  # one decision per record, however many handlers ask
            decided = record.__dict__[_DECIDED] = self._decide(record)
        return bool(decided)

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not self._limited(record.name):
            return True
        now = self.clock()
        key = (record.name, record.levelno, str(record.msg))
        seen = self._seen.get(key)
        if seen is not None and now - seen.shown_at < self.interval:
            seen.held_back += 1
            return False
        if seen is not None and seen.held_back:
            held = f"{seen.held_back} more like this in the last {now - seen.shown_at:.0f}s"
            record.msg = f"{record.getMessage()} ({held})"
            record.args = ()  # not None: Faust's formatter wraps None into (None,) and formats again
        if len(self._seen) >= _MOST_KINDS:
            self._seen = {k: v for k, v in self._seen.items() if now - v.shown_at < self.interval}
        self._seen[key] = _Seen(now)
        return True

    def _limited(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)


def install_repeat_filter(logger: logging.Logger, interval: float = 30.0) -> RepeatFilter:
    """Put one :class:`RepeatFilter` on every handler of ``logger`` (the root logger, once it is configured)."""
    repeat = RepeatFilter(interval)
    for handler in logger.handlers:
        handler.addFilter(repeat)
    return repeat
