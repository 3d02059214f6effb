"""Hypothesis profiles: ``make test`` runs each fuzz property 500 times (4,500 cases); ``make fuzz`` 12,000 times
each (108,000 cases over the nine properties), or ``LEADFLOW_FUZZ_EXAMPLES`` each.

Tests that set their own ``max_examples`` keep it; the fuzz properties (tests/unit/test_fuzz.py) take the
profile's. Select one with ``pytest --hypothesis-profile=fuzz``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=500, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("LEADFLOW_FUZZ_EXAMPLES", "12000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("default")
