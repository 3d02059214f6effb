"""Times as leadflow writes them: ISO 8601 in UTC."""

from __future__ import annotations

import datetime as dt
import functools

__all__ = ["iso_utc"]


@functools.lru_cache(maxsize=4)  # a batch has one decided_at: formatted once
def iso_utc(ts: float) -> str:
    """``1794130400.0`` → ``"2026-11-08T09:33:20+00:00"``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
