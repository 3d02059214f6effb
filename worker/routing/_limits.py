"""The limits that keep a routing section cheap to load and to run; each is checked when the ruleset loads."""

from __future__ import annotations

__all__ = ["MAX_MEMBERS", "MAX_OUT_OF_OFFICE", "MAX_POOLS", "MAX_ROUTING_RULES", "MAX_TERRITORIES"]

MAX_POOLS = 200
"""Pools in one routing section."""

MAX_MEMBERS = 500
"""Members in one pool."""

MAX_ROUTING_RULES = 500
"""Ordered routing rules."""

MAX_TERRITORIES = 1000
"""Territories."""

MAX_OUT_OF_OFFICE = 100
"""Out-of-office periods of one member."""
