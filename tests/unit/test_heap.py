"""GC_FREEZE: a process's start-up heap leaves the collector's reach, or stays in it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import pytest

from leaderboard.heap import freeze_startup_heap
from leaderboard.settings import Settings


class Node:
    """An object that can hold itself: cyclic garbage once dropped."""

    def __init__(self) -> None:
        self.me: Node | None = self


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test process keeps Python's default behaviour


def garbage_cycle() -> weakref.ref[Node]:
    return weakref.ref(Node())


def test_the_start_up_heap_is_frozen_after_its_garbage_is_collected(
        make_settings: Callable[..., Settings]) -> None:
    held = [Node() for _ in range(1000)]  # start-up state: alive, tracked by the collector
    before = garbage_cycle()
    count = freeze_startup_heap(make_settings())
    assert count >= len(held) and gc.get_freeze_count() >= len(held)
    assert before() is None  # collected, not frozen
    after = garbage_cycle()
    gc.collect()
    assert after() is None  # what is made later is collected as before


def test_gc_freeze_false_leaves_the_collector_as_it_is(
        make_settings: Callable[..., Settings]) -> None:
    assert freeze_startup_heap(make_settings(GC_FREEZE="false")) == 0
    assert gc.get_freeze_count() == 0
