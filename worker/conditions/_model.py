"""The two types every compiled condition is made of: the facts of a lead and a condition over them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Condition", "Facts"]

Facts = Mapping[str, Any]
"""The flat ``path -> value`` facts of a lead (see :func:`worker.lead.state.build_facts`)."""

Condition = Callable[[Facts], bool]
"""A compiled ``when``: a pure function of the facts."""
