"""The worker's garbage-collector settings (``LEADFLOW_GC_THRESHOLD``): set at start-up, or left alone with 0."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from worker.engine import tune_gc
from worker.settings import Settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_the_worker_collects_less_often_and_freezes_what_start_up_built() -> None:
    _, middle, old = gc.get_threshold()
    gc.unfreeze()
    tune_gc(Settings().gc_threshold)
    assert gc.get_threshold() == (50_000, middle, old)
    assert gc.get_freeze_count() > 1000  # the modules imported so far are out of the collector's sight


@pytest.mark.usefixtures("restored_gc")
def test_zero_leaves_pythons_settings_alone() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    tune_gc(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_negative_threshold_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="gc_threshold"):
        Settings(gc_threshold=-1)
