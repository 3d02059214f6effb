"""Hypothesis profiles: ``make test`` runs the fuzz properties a thousand times each; ``make fuzz`` 10^5 times.

Tests that set their own ``max_examples`` keep it; the fuzz properties (tests/unit/test_fuzz.py) take the
profile's. Select one with ``pytest --hypothesis-profile=fuzz``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=1_000, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=100_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("default")
