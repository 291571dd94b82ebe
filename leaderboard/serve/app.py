"""The whole Serve graph, built in one place from one Settings."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from leaderboard.actors.router import ensure_shards
from leaderboard.pipeline.pool import ensure_writers
from leaderboard.serve.gateway import Gateway
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import Settings

QUIET_LOGS: dict[str, Any] = {"enable_access_log": False, "log_level": "WARNING"}


def ranking_autoscaling(settings: Settings) -> dict[str, Any]:
    return {
        "min_replicas": settings.ranking_min_replicas,
        "max_replicas": settings.ranking_max_replicas,
        "target_ongoing_requests": 64,
        "upscale_delay_s": 5,
        "downscale_delay_s": 120,
    }


def build_app(settings: Settings) -> Application:
    """Shard actors and writers (created or found by name), Ranker, and the Gateway ingress."""
    shards = ensure_shards(settings)
    writers = ensure_writers(settings)
    ranker = serve.deployment(
        name="Ranker",
        max_ongoing_requests=96,
        autoscaling_config=ranking_autoscaling(settings),
        ray_actor_options={"num_cpus": 0.5},
        logging_config=QUIET_LOGS,
    )(Ranker).bind(settings)
    gateway = serve.deployment(
        name="Gateway",
        num_replicas=settings.gateway_replicas,
        max_ongoing_requests=settings.max_ongoing_requests,
        ray_actor_options={"num_cpus": 0.5},
        logging_config=QUIET_LOGS,
    )(Gateway).bind(settings, ranker, shards, writers)
    return gateway
