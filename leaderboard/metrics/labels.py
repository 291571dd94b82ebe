"""Bounded label values, and the per-label-set tallies a shard adds once per micro-batch."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leaderboard.actors.shard_types import WriteCommand, WriteResult

OTHER = "_other"  # every board not in METRICS_BOARDS
APPLIED = {"ok", "replay"}


class BoardLabels:
    """A board id as a label value: itself when named in ``METRICS_BOARDS``, else ``_other``
    (so a client sending random board ids cannot grow the series count)."""

    def __init__(self, named: Iterable[str]) -> None:
        self._named = frozenset(named)

    def __call__(self, board: str) -> str:
        return board if board in self._named else OTHER


def applied_result(result: WriteResult) -> str:
    """``changed``, ``unchanged`` (a best write that did not improve) or ``replay``."""
    if result.status == "replay":
        return "replay"
    return "changed" if result.improved else "unchanged"


def tally(
    cmds: Sequence[WriteCommand], results: Sequence[WriteResult], board: BoardLabels
) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str, str]]]:
    """Applied writes per (board, result) and refused ones per (board, reason, scope)."""
    applied: Counter[tuple[str, str]] = Counter()
    refused: Counter[tuple[str, str, str]] = Counter()
    for cmd, result in zip(cmds, results, strict=True):
        if result.status in APPLIED:
            applied[board(cmd.board), applied_result(result)] += 1
        else:
            refused[board(cmd.board), result.status, result.scope] += 1
    return applied, refused


def cumulative_buckets(values: Sequence[float], bounds: Sequence[float]) -> list[tuple[str, int]]:
    """(``le``, how many values are at most it) per bound, then ``+Inf``: Prometheus's
    cumulative bucket form, computed once per batch instead of one observation per value."""
    ordered = sorted(values)
    counts = [(f"{b:g}", bisect.bisect_right(ordered, b)) for b in bounds]
    return [*counts, ("+Inf", len(ordered))]
