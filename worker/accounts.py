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

from worker._topic_reader import RawRecord, follow_topic, read_topic
from worker.exceptions import EventError
from worker.routing import AccountIndex
from worker.settings import Settings

__all__ = ["AccountFeed", "decode_account"]

logger = logging.getLogger(__name__)


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
    if value is None:
        return account_id, None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        msg = f"account {account_id!r}: the value is not JSON ({exc})"
        raise EventError(msg, reason="not_json") from exc
    if not isinstance(data, dict):
        msg = f"account {account_id!r}: the value must be a JSON object, got {type(data).__name__}"
        raise EventError(msg, reason="schema")
    owner = data.get("owner_id")
    if owner is not None and not isinstance(owner, str):
        msg = f"account {account_id!r}: 'owner_id' must be a string, got {owner!r}"
        raise EventError(msg, reason="schema")
    domains = data.get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        msg = f"account {account_id!r}: 'domains' must be a list of strings"
        raise EventError(msg, reason="schema")
    for name in ("name", "website"):
        if data.get(name) is not None and not isinstance(data[name], str):
            msg = f"account {account_id!r}: {name!r} must be a string, got {data[name]!r}"
            raise EventError(msg, reason="schema")
    data.setdefault("account_id", account_id)
    return account_id, data


class AccountFeed:
    """Keeps an :class:`AccountIndex` equal to the accounts topic; counts what it refuses."""

    def __init__(self, settings: Settings, on_refused: Callable[[str], object] | None = None) -> None:
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
        try:
            account_id, account = decode_account(record.key, record.value)
        except EventError as exc:
            logger.error(
                "ignored the accounts record at partition %d offset %d: %s", record.partition, record.offset, exc
            )
            if self.on_refused is not None:
                self.on_refused(exc.reason)
            return
        self.index.put(account_id, account)

    async def follow(self) -> None:
        """Apply new records as they arrive, for ever."""
        await follow_topic(self.settings, self.settings.topic_accounts, "accounts", self.next_offsets, self.apply)
