"""The recorders each process holds: ``ray.util.metrics`` objects made from ``specs``.

Counters are added to once per label set per micro-batch (or batch), never per request.
Ray's agent forgets a gauge not set again within two report intervals, so gauges are set by a
loop of their owner every ``GAUGE_PERIOD_S`` (the shard's, the writer's, the gateway's).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ray.util import metrics as ray_metrics

from leaderboard.metrics import specs
from leaderboard.metrics.labels import BoardLabels, cumulative_buckets, tally
from leaderboard.metrics.specs import NS, Spec

if TYPE_CHECKING:
    from leaderboard.actors.shard_types import WriteCommand, WriteResult

GAUGE_PERIOD_S = 1.0


def _tags(spec: Spec, kind: str, namespace: str, defaults: dict[str, str]) -> dict[str, str]:
    assert spec.kind == kind, f"{spec.name} is a {spec.kind}"
    return {NS: namespace, **defaults}


def counter(spec: Spec, namespace: str, **defaults: str) -> ray_metrics.Counter:
    """The Ray counter of ``spec``, its namespace (and ``defaults``) as default tags."""
    metric = ray_metrics.Counter(spec.name, spec.help, spec.tags)
    metric.set_default_tags(_tags(spec, "counter", namespace, defaults))
    return metric


def gauge(spec: Spec, namespace: str, **defaults: str) -> ray_metrics.Gauge:
    metric = ray_metrics.Gauge(spec.name, spec.help, spec.tags)
    metric.set_default_tags(_tags(spec, "gauge", namespace, defaults))
    return metric


def histogram(spec: Spec, namespace: str, **defaults: str) -> ray_metrics.Histogram:
    metric = ray_metrics.Histogram(spec.name, spec.help, list(spec.buckets), spec.tags)
    metric.set_default_tags(_tags(spec, "histogram", namespace, defaults))
    return metric


class WriteCounts:
    """Score writes applied and refused, by shard, board (bounded), result or reason."""

    def __init__(self, namespace: str, boards: Iterable[str]) -> None:
        self.board = BoardLabels(boards)
        self._applied = counter(specs.WRITES_APPLIED, namespace)
        self._refused = counter(specs.WRITES_REFUSED, namespace)

    def count(self, shard: str, cmds: Sequence[WriteCommand],
              results: Sequence[WriteResult]) -> None:
        """One micro-batch's answers: one ``inc`` per label set."""
        applied, refused = tally(cmds, results, self.board)
        for (board, result), n in applied.items():
            self._applied.inc(n, {"shard": shard, "board": board, "result": result})
        for (board, reason, scope), n in refused.items():
            self._refused.inc(n, {"shard": shard, "board": board, "reason": reason,
                                  "scope": scope})

    def refuse(self, shard: str, cmds: Sequence[WriteCommand], reason: str) -> None:
        """Writes refused before reaching their shard (the gateway's ``shard_unreachable``)."""
        for board, n in Tally(self.board(c.board) for c in cmds).items():
            self._refused.inc(n, {"shard": shard, "board": board, "reason": reason, "scope": ""})


@dataclass(frozen=True)
class ShardState:
    """What a shard reports each period: its stream, dead letters, instance and rebuild."""

    backlog: int
    dead: int
    oldest_s: float
    warming: bool
    rebuild_running: bool
    rebuild_rows: int


class ShardGauges:
    """A shard's gauges, and its rebuild counter."""

    def __init__(self, namespace: str, shard: str) -> None:
        self._gauges = {s.name: gauge(s, namespace, shard=shard) for s in (
            specs.BACKLOG, specs.OLDEST, specs.DEAD_LETTERS, specs.WARMING,
            specs.REBUILD_RUNNING, specs.REBUILD_ROWS)}
        self._rebuilds = counter(specs.REBUILDS, namespace, shard=shard)

    def set(self, st: ShardState) -> None:
        values = {specs.BACKLOG: st.backlog, specs.OLDEST: st.oldest_s,
                  specs.DEAD_LETTERS: st.dead, specs.WARMING: int(st.warming),
                  specs.REBUILD_RUNNING: int(st.rebuild_running),
                  specs.REBUILD_ROWS: st.rebuild_rows}
        for spec, value in values.items():
            self._gauges[spec.name].set(value)

    def rebuilt(self, outcome: str) -> None:
        self._rebuilds.inc(1, {"outcome": outcome})


class FoldGauges:
    """GLOBAL's fold-lag histogram (kept on GLOBAL's instance), as gauges."""

    def __init__(self, namespace: str) -> None:
        self._lag = gauge(specs.FOLD_LAG, namespace)
        self._max = gauge(specs.FOLD_LAG_MAX, namespace)
        self._last = gauge(specs.FOLD_LAG_LAST, namespace)
        self._folded = gauge(specs.FOLDED, namespace)

    def set(self, cumulative: Sequence[tuple[str, int]], max_s: float, last_s: float,
            fast: int, net: int) -> None:
        for le, n in cumulative:
            self._lag.set(n, {"le": le})
        self._max.set(max_s)
        self._last.set(last_s)
        self._folded.set(fast, {"source": "fast"})
        self._folded.set(net, {"source": "net"})


class WriterMetrics:
    """One writer actor's: batches, upsert time, write-to-Postgres lag, dead letters, pause."""

    def __init__(self, namespace: str, writer: str) -> None:
        self._batch = histogram(specs.WRITER_BATCH, namespace)
        self._upsert = histogram(specs.WRITER_UPSERT, namespace)
        self._lag = counter(specs.POSTGRES_LAG, namespace)
        self._lag_sum = counter(specs.POSTGRES_LAG_SUM, namespace)
        self._events = counter(specs.WRITER_EVENTS, namespace)
        self._errors = counter(specs.WRITER_ERRORS, namespace)
        self._dead = counter(specs.DEAD_LETTERED, namespace)
        self._paused = gauge(specs.WRITER_PAUSED, namespace, writer=writer)

    def batch(self, size: int, upsert_s: float | None, lags_s: Sequence[float]) -> None:
        """A batch acknowledged: its size, its upsert's time (None: nothing to store), and
        each stored event's lag (counted into buckets here: one ``inc`` per bucket)."""
        self._batch.observe(size)
        if upsert_s is not None:
            self._upsert.observe(upsert_s)
        if not lags_s:
            return
        for le, n in cumulative_buckets(lags_s, specs.LAG_BUCKETS_S):
            if n:
                self._lag.inc(n, {"le": le})
        total = sum(lags_s)
        if total > 0:
            self._lag_sum.inc(total)
        self._events.inc(len(lags_s))

    def dead(self, per_shard: Tally[str]) -> None:
        for shard, n in per_shard.items():
            self._dead.inc(n, {"shard": shard})

    def error(self) -> None:
        self._errors.inc(1)

    def paused(self, paused: bool) -> None:
        self._paused.set(int(paused))


class GatewayMetrics:
    """A gateway replica's: writes its shards never saw, auth refusals, live streams."""

    def __init__(self, namespace: str, boards: Iterable[str]) -> None:
        self.writes = WriteCounts(namespace, boards)
        self._auth = counter(specs.AUTH_LIMITED, namespace)
        self._watchers = gauge(specs.LIVE_WATCHERS, namespace)
        self._views = gauge(specs.LIVE_VIEWS, namespace)

    def auth_limited(self) -> None:
        self._auth.inc(1)

    def live(self, watchers: int, views: int) -> None:
        self._watchers.set(watchers)
        self._views.set(views)
