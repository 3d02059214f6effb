"""Hypothesis profiles: ``make test`` runs each fuzz property 500 times (4,500 cases); ``make fuzz`` 12,000 times
each (108,000 cases over the nine properties), or ``LEADFLOW_FUZZ_EXAMPLES`` each.

Tests that set their own ``max_examples`` keep it; the fuzz properties (tests/unit/test_fuzz.py) take the
profile's. Select one with ``pytest --hypothesis-profile=fuzz``.

The test processes collect garbage as the worker does (``LEADFLOW_GC_THRESHOLD``, see
:func:`worker.stream.runner.tune_gc`): a young-generation pass every 50,000 allocations rather than 700, and what
collection built (modules, test functions, fixtures' definitions) frozen out of the collector's sight. The unit tests
allocate millions of short-lived objects (Hypothesis, the core, model training); Python's default cost them about
a tenth of their CPU time. Nothing a test asserts depends on when the collector runs.
"""

from __future__ import annotations

import gc
import os

import pytest
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


def pytest_configure(config: pytest.Config) -> None:
    _, middle, old = gc.get_threshold()
    gc.set_threshold(50_000, middle, old)


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()
    gc.freeze()
