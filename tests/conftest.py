"""Hypothesis profiles: ``make test`` runs each fuzz property 500 times (4,500 cases); ``make fuzz`` 12,000 times
each (108,000 cases over the nine properties), or ``LEADFLOW_FUZZ_EXAMPLES`` each.

Tests that set their own ``max_examples`` keep it; the fuzz properties (tests/unit/test_fuzz.py) take the
profile's. Select one with ``pytest --hypothesis-profile=fuzz``.

The test processes collect garbage as the worker does (``LEADFLOW_GC_THRESHOLD``, see
:func:`worker.engine.tune_gc`): a young-generation pass every 50,000 allocations rather than 700, and what
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


# ``make test`` hands whole files to its processes (``--dist loadfile``) in the order collected
# (``--no-loadscope-reorder``): the longest files first, so that none of them starts when the others are nearly done
# and keeps one process busy alone at the end. Seconds of one run on 3 processes (2 cores); files not listed follow
# in the usual order.
LONGEST_FIRST = (
    "tests/unit/test_fuzz.py",  # 113
    "tests/integration/test_worker.py",  # 75
    "tests/integration/test_routing.py",  # 71
    "tests/integration/restarts/test_counts.py",  # 68
    "tests/integration/test_secured.py",  # 54
    "tests/unit/scoring/test_education_export.py",  # 54, when shared/data is there
    "tests/unit/scoring/test_drift.py",  # 52
    "tests/unit/tools/backtest/test_docs.py",  # 51
    "tests/unit/tools/rules/test_soundness.py",  # 46
    "tests/unit/rules/test_property.py",  # 45
    "tests/unit/scoring/test_tabular.py",  # 44
    "tests/integration/test_codecs.py",  # 43
    "tests/integration/test_reload.py",  # 43
    "tests/integration/restarts/test_seek.py",  # 40
    "tests/integration/restarts/test_upgrade.py",  # 39
    "tests/integration/test_prometheus.py",  # 39
    "tests/integration/restarts/test_backlog.py",  # 38
    "tests/unit/lead/test_form.py",  # 36
    "tests/integration/test_wake.py",  # 34
    "tests/integration/test_erase.py",  # 32
    "tests/unit/scoring/test_cli.py",  # 31
    "tests/integration/test_route_explain.py",  # 30
    "tests/integration/restarts/test_redelivery.py",  # 30
    "tests/unit/scoring/test_no_better.py",  # 29
    "tests/integration/test_ops.py",  # 29
    "tests/unit/scoring/test_cross.py",  # 25
    "tests/integration/test_duplicates.py",  # 25
    "tests/unit/scoring/test_train.py",  # 23
    "tests/integration/test_broker_restart.py",  # 22
    "tests/unit/test_columnar.py",  # 21
    "tests/integration/test_intake.py",  # 21
    "tests/unit/tools/test_export_training.py",  # 21
    "tests/unit/scoring/test_knots.py",  # 20
    "tests/integration/test_hostile.py",  # 20
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: a file stays whole
