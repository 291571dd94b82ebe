"""Every metric the service records: name, kind, labels and buckets. No Ray here: the dashboard
test (tests/unit/test_dashboard.py) and the README are checked against this table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]
RAY_PREFIX = "ray_"  # Ray's metrics agent exports every metric as ray_<name>

# bounded label values only: BOARD (one per deployment), shard names (REGIONS x REGION_SPLITS),
# METRICS_BOARDS + "_other", the refusal statuses of the write script, writer names (the pool)
NS = "namespace"  # the deployment's BOARD
LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                 30.0, 60.0)
UPSERT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass(frozen=True)
class Spec:
    """One metric as recorded with ``ray.util.metrics``."""

    name: str
    kind: Kind
    help: str
    tags: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    def exported(self) -> set[str]:
        """The names Prometheus sees on Ray's metrics agent."""
        base = RAY_PREFIX + self.name
        if self.kind == "counter":
            return {base + "_total"}
        if self.kind == "histogram":
            return {base + "_bucket", base + "_sum", base + "_count"}
        return {base}


def _c(name: str, help_: str, *tags: str) -> Spec:
    return Spec(name, "counter", help_, (NS, *tags))


def _g(name: str, help_: str, *tags: str) -> Spec:
    return Spec(name, "gauge", help_, (NS, *tags))


def _h(name: str, help_: str, buckets: tuple[float, ...], *tags: str) -> Spec:
    return Spec(name, "histogram", help_, (NS, *tags), buckets)


# -- shard actors: writes, their stream, recovery --------------------------------------------
WRITES_APPLIED = _c("leaderboard_score_writes_applied",
                    "Score writes applied (result: changed, unchanged = a best write that did "
                    "not improve, replay = an Idempotency-Key answered again)",
                    "shard", "board", "result")
WRITES_REFUSED = _c("leaderboard_score_writes_refused",
                    "Score writes refused, by the write script's status (rate_limited with the "
                    "bucket's scope user or region; shard_unreachable: counted by the gateway)",
                    "shard", "board", "reason", "scope")
BACKLOG = _g("leaderboard_stream_backlog", "Events on the shard's stream not yet in Postgres",
             "shard")
OLDEST = _g("leaderboard_stream_oldest_seconds",
            "Age of the oldest event on the shard's stream (0: empty)", "shard")
DEAD_LETTERS = _g("leaderboard_dead_letters", "Events in the shard's dead-letter stream",
                  "shard")
WARMING = _g("leaderboard_warming",
             "1 while the shard's Redis instance lacks its data (rebuild from Postgres pending "
             "or running)", "shard")
REBUILD_RUNNING = _g("leaderboard_rebuild_running",
                     "1 while this shard rebuilds its instance from Postgres", "shard")
REBUILD_ROWS = _g("leaderboard_rebuild_rows",
                  "Rows restored by this shard's running (or last) rebuild", "shard")
REBUILDS = _c("leaderboard_rebuilds",
              "Redis data losses handled (outcome: rebuilt = this shard rebuilt the instance, "
              "replayed = it replayed its unstored writes after another shard's rebuild)",
              "shard", "outcome")
AUTH_LIMITED = _c("leaderboard_auth_rate_limited",
                  "Sign-ups and logins refused by the auth rate limits (scope auth)")

# -- writers ----------------------------------------------------------------------------------
WRITER_BATCH = _h("leaderboard_writer_batch_size", "Stream entries per writer batch",
                  BATCH_BUCKETS)
WRITER_UPSERT = _h("leaderboard_writer_upsert_seconds",
                   "Time to store one batch in Postgres (the upsert transaction)",
                   UPSERT_BUCKETS_S)
# the lag per event, counted into buckets in the writer and added once per batch (one inc per
# bucket, not one observe per event: docs/metrics.md), in Prometheus's cumulative bucket form
POSTGRES_LAG = _c("leaderboard_postgres_lag_events",
                  "Events stored with a lag of at most le seconds from entering their stream "
                  "(Redis's clock) to their Postgres commit; histogram_quantile works on it", "le")
POSTGRES_LAG_SUM = _c("leaderboard_postgres_lag_seconds",
                      "Sum of those lags (exact; over the le=+Inf count: the mean lag)")
WRITER_EVENTS = _c("leaderboard_writer_events_stored", "Events stored in Postgres by writers")
WRITER_ERRORS = _c("leaderboard_writer_errors",
                   "Writer batches that failed and are retried (Postgres or Redis away)")
DEAD_LETTERED = _c("leaderboard_dead_lettered",
                   "Events the writers moved to a dead-letter stream", "shard")
WRITER_PAUSED = _g("leaderboard_writer_paused", "1 while the writer is paused (admin API)",
                   "writer")

# -- GLOBAL across several Redis instances (read from GLOBAL's instance) -----------------------
FOLD_LAG = _g("leaderboard_global_fold_lag_events",
              "Remote writes folded into GLOBAL with a lag of at most le seconds (cumulative, "
              "since GLOBAL's instance started keeping them); histogram_quantile works on it",
              "le")
FOLD_LAG_MAX = _g("leaderboard_global_fold_lag_max_seconds", "Largest fold lag seen")
FOLD_LAG_LAST = _g("leaderboard_global_fold_lag_last_seconds", "Lag of the last folded write")
FOLDED = _g("leaderboard_global_folded_events",
            "Remote writes folded into GLOBAL (source: fast = by the shard, net = by a writer)",
            "source")

# -- gateways: live streams -------------------------------------------------------------------
LIVE_WATCHERS = _g("leaderboard_live_watchers", "Open live streams (SSE) of the replica")
LIVE_VIEWS = _g("leaderboard_live_views", "Distinct views the replica's live streams watch")

SPECS: tuple[Spec, ...] = (
    WRITES_APPLIED, WRITES_REFUSED, BACKLOG, OLDEST, DEAD_LETTERS, WARMING, REBUILD_RUNNING,
    REBUILD_ROWS, REBUILDS, AUTH_LIMITED, WRITER_BATCH, WRITER_UPSERT, POSTGRES_LAG,
    POSTGRES_LAG_SUM,
    WRITER_EVENTS, WRITER_ERRORS, DEAD_LETTERED, WRITER_PAUSED, FOLD_LAG, FOLD_LAG_MAX,
    FOLD_LAG_LAST, FOLDED, LIVE_WATCHERS, LIVE_VIEWS,
)

# Serve's own, which the dashboard uses too (tests/e2e/test_metrics.py checks they are exported)
SERVE_METRICS = (
    "ray_serve_num_http_requests_total",  # by application, route, method, status code
    "ray_serve_http_request_latency_ms_bucket",
    "ray_serve_deployment_request_counter_total",  # by deployment and replica
    "ray_serve_deployment_processing_latency_ms_bucket",
)


def exported_names() -> set[str]:
    """Every name the dashboard may use: ours as exported, and Serve's."""
    return {n for spec in SPECS for n in spec.exported()} | set(SERVE_METRICS)
