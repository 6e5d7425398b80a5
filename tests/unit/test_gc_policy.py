"""The collector set-up every pyetcd server process runs with (pyetcd/gc_policy.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pyetcd.gc_policy import YOUNG_THRESHOLD, freeze_startup_heap, tune_collector
from pyetcd.process_run import run_async


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_a_server_loop_runs_with_the_larger_young_threshold(restored_collector: None) -> None:
    gc.set_threshold(700, 10, 10)

    async def young_threshold() -> int:
        return gc.get_threshold()[0]

    assert run_async(young_threshold()) == YOUNG_THRESHOLD
    assert gc.get_threshold()[1:] == (10, 10)


def test_tuning_keeps_the_older_generations_ratios(restored_collector: None) -> None:
    gc.set_threshold(700, 7, 3)
    tune_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 7, 3)


def test_freezing_moves_what_exists_out_of_reach_of_later_collections(restored_collector: None) -> None:
    survivor = [object() for _ in range(100)]
    frozen = freeze_startup_heap()
    assert frozen >= len(survivor) and gc.get_freeze_count() == frozen
    gc.collect()
    assert gc.get_freeze_count() == frozen  # a full collection leaves the permanent generation alone
