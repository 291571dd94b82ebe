"""Closed intervals by key, and which of them a range overlaps, without looking at them all.

An interval with a finite width goes into the class of its width (``width < 2**c``), each class
sorted by its lower end: the intervals of class c overlapping ``[a, b]`` start within
``[a - 2**c, b]``, a slice found by bisection. Intervals with an infinite end (a page from rank 1
reaches to +inf) are few and looked at one by one.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
End = int | float  # an int, or -inf / +inf


class IntervalIndex(Generic[K]):
    """Keys with a closed interval ``[lo, hi]`` each."""

    def __init__(self) -> None:
        self._serial = itertools.count()
        self._wide: dict[K, tuple[End, End]] = {}
        self._starts: dict[int, list[tuple[int, int]]] = {}  # class -> sorted (lo, serial)
        self._entries: dict[int, tuple[K, int, int]] = {}  # serial -> key, lo, hi
        self._where: dict[K, tuple[int, int, int]] = {}  # key -> class, lo, serial

    def __len__(self) -> int:
        return len(self._wide) + len(self._where)

    def add(self, key: K, lo: End, hi: End) -> None:
        self.remove(key)
        if math.isinf(lo) or math.isinf(hi):
            self._wide[key] = (lo, hi)
            return
        low, high = int(lo), int(hi)
        width_class, serial = max(0, high - low).bit_length(), next(self._serial)
        starts = self._starts.setdefault(width_class, [])
        starts.insert(bisect_left(starts, (low, serial)), (low, serial))
        self._entries[serial] = (key, low, high)
        self._where[key] = (width_class, low, serial)

    def remove(self, key: K) -> None:
        if self._wide.pop(key, None) is not None:
            return
        found = self._where.pop(key, None)
        if found is None:
            return
        width_class, low, serial = found
        starts = self._starts[width_class]
        del starts[bisect_left(starts, (low, serial))]
        del self._entries[serial]

    def overlapping(self, a: int, b: int) -> list[K]:
        """The keys whose interval shares a point with ``[a, b]`` (``a <= b``)."""
        out = [k for k, (lo, hi) in self._wide.items() if lo <= b and hi >= a]
        for width_class, starts in self._starts.items():
            first = bisect_left(starts, (a - (1 << width_class), -1))
            last = bisect_right(starts, (b, math.inf))
            for _, serial in starts[first:last]:
                key, _, hi = self._entries[serial]
                if hi >= a:
                    out.append(key)
        return out
