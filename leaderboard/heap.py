"""Start-up heap freezing: the collector stops walking what every process holds from its start.

A Ray worker holds ~10^5-10^6 objects from its start (Ray's, pydantic's and our modules, the
actor's own state). Python's cyclic collector walks all of them on every full collection, and
a busy process triggers those often: a writer turning 1,000-entry stream replies into events
spent about half of its CPU in the collector. ``gc.freeze()`` moves every object alive at that
moment into a permanent generation that collections skip (what CPython recommends for servers
after start-up, and what Instagram's servers do). What it gives up: an object alive at start-up
that later becomes cyclic garbage is never freed, a leak bounded by the start-up heap.
``GC_FREEZE=false`` keeps Python's default behaviour."""

from __future__ import annotations

import gc

from leaderboard.settings import Settings


def freeze_startup_heap(settings: Settings) -> int:
    """Collect once, then freeze what is left (``GC_FREEZE``); the objects frozen (0: off)."""
    if not settings.gc_freeze:
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
