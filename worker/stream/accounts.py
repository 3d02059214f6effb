"""Known accounts for lead-to-account matching, read from the compacted ``accounts`` topic.

The CRM side publishes one record per account (key = account id, value = JSON, a null value deletes it)::

    {"account_id": "001A", "name": "Acme GmbH", "owner_id": "005-ACME", "website": "https://acme.example",
     "domains": ["acme.example", "acme.de"]}

Every worker reads the whole topic itself, without a consumer group, at start-up and then as it changes (like the
control topic): routing a lead to its account's owner then never waits on another worker. The index lives in
memory; thousands of accounts take a few megabytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from worker.exceptions import DeadLetterReason, EventError
from worker.routing import AccountIndex
from worker.settings import Settings
from worker.stream._fetch import unreadable
from worker.stream.reader import RawRecord, follow_topic, read_topic

__all__ = ["AccountFeed", "decode_account"]

logger = logging.getLogger(__name__)


_MAX_TEXT = 1000
_MAX_DOMAINS = 1000


def decode_account(key: bytes | None, value: bytes | None) -> tuple[str, dict[str, Any] | None]:
    """The account id and record (None for a tombstone) of one accounts record; EventError says what is wrong."""
    if key is None:
        msg = "an accounts record needs the account id as its key"
        raise EventError(msg, reason="missing_key")
    try:
        account_id = key.decode()
    except UnicodeDecodeError as exc:
        msg = f"the key of an accounts record is not UTF-8: {key[:40]!r}"
        raise EventError(msg, reason="not_utf8") from exc
    if len(account_id) > _MAX_TEXT:
        msg = f"the key of an accounts record is {len(account_id):,} characters long; at most {_MAX_TEXT} expected"
        raise EventError(msg, reason="schema_violation")
    if value is None:
        return account_id, None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:  # depth-bounded, no NaN: whatever the bytes, it says so and returns
        msg = f"account {account_id!r}: the value is not JSON ({exc})"
        raise EventError(msg, reason="not_json") from exc
    if not isinstance(data, dict):
        msg = f"account {account_id!r}: the value must be a JSON object, got {type(data).__name__}"
        raise EventError(msg, reason="not_an_object")
    for name in ("owner_id", "name", "website"):
        text = data.get(name)
        if text is not None and not (isinstance(text, str) and len(text) <= _MAX_TEXT):
            msg = f"account {account_id!r}: {name!r} must be a text of at most {_MAX_TEXT} characters"
            raise EventError(msg, reason="schema_violation")
    domains = data.get("domains", [])
    if not (
        isinstance(domains, list)
        and len(domains) <= _MAX_DOMAINS
        and all(isinstance(d, str) and len(d) <= _MAX_TEXT for d in domains)
    ):
        msg = f"account {account_id!r}: 'domains' must be a list of at most {_MAX_DOMAINS} texts"
        raise EventError(msg, reason="schema_violation")
    data.setdefault("account_id", account_id)
    return account_id, data


class AccountFeed:
    """Keeps an :class:`AccountIndex` equal to the accounts topic; counts what it refuses."""

    def __init__(self, settings: Settings, on_refused: Callable[[DeadLetterReason], object] | None = None) -> None:
        self.settings = settings
        self.index = AccountIndex()
        self.next_offsets: dict[int, int] = {}
        self.on_refused = on_refused

    def load(self) -> None:
        """Read the whole topic (at start-up, before the first lead is decided)."""
        records, self.next_offsets = read_topic(self.settings, self.settings.topic_accounts, "accounts")
        for record in records:
            self.apply(record)
        logger.info("%d known accounts from %r", len(self.index), self.settings.topic_accounts)

    def apply(self, record: RawRecord) -> None:
        """Apply one record of the topic; one that cannot be read is logged, counted and skipped (never raises)."""
        try:
            error = unreadable(record.source) if record.source is not None else None
            if error is not None:
                raise EventError(error, reason="unreadable")
            account_id, account = decode_account(record.key, record.value)
            self.index.put(account_id, account)
        except Exception as exc:
            reason: DeadLetterReason = exc.reason if isinstance(exc, EventError) else "processing_error"
            logger.error(
                "ignored the accounts record at partition %d offset %d (%s): %s",
                record.partition,
                record.offset,
                reason,
                exc,
            )
            if self.on_refused is not None:
                self.on_refused(reason)

    async def follow(self) -> None:
        """Apply new records as they arrive, for ever."""
        await follow_topic(self.settings, self.settings.topic_accounts, "accounts", self.next_offsets, self.apply)
