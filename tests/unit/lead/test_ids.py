"""Deterministic ids are a contract: consumers drop duplicates by them, across replays and leadflow versions."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from worker.lead import ids

_NAMESPACE = uuid.UUID("6f1d8a52-5c3e-4d0b-9a51-3c1e4f0b7d21")


@given(st.text(min_size=1), st.text(min_size=1))
def test_a_decision_id_is_the_uuid5_of_its_lead_and_event(lead_id: str, event_id: str) -> None:
    expected = str(uuid.uuid5(_NAMESPACE, f"decision\x1f{lead_id}\x1f{event_id}"))
    assert ids.decision_id(lead_id, event_id) == expected
    assert ids.decision_id(lead_id, event_id) == expected  # the shared, pre-hashed prefix is not consumed


def test_ids_are_the_ones_earlier_versions_gave() -> None:
    """Pinned: a change here re-keys every consumer's duplicate check."""
    assert ids.decision_id("L1", "e-1") == "d2d00ec3-8333-5013-9496-1810caebab29"
    assert ids.opportunity_id("L1") == "opp-5c5de3675c3756289c3b41332c2cdb49"
