"""The whole Serve graph, built in one place from one Settings and the Serve config's options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray
from ray import serve
from ray.serve import Application

from leaderboard.actors.router import ensure_shards
from leaderboard.pipeline.pool import ensure_writers
from leaderboard.serve.config import deployment_options
from leaderboard.serve.gateway import Gateway
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import Settings

Options = Mapping[str, Mapping[str, Any]]


def alive_nodes() -> int:
    """Nodes of the connected Ray cluster that are alive."""
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return sum(1 for node in nodes if node["Alive"])


def most_replicas(options: Mapping[str, Any]) -> int:
    """The most replicas a deployment's options allow."""
    autoscaling = options.get("autoscaling_config") or {}
    return int(autoscaling.get("max_replicas") or options.get("num_replicas") or 1)


def build_app(settings: Settings, options: Options | None = None) -> Application:
    """Shard actors and writers (created or found by name), Ranker, and the Gateway ingress.

    ``options`` are per deployment name the ``Deployment.options`` keywords, by default the
    checked-in serve_config.yaml's. The gateway gets one replica per alive node unless the
    options pin ``num_replicas``.
    """
    opts = deployment_options() if options is None else options
    shards = ensure_shards(settings)
    writers = ensure_writers(settings)
    ranker_opts = dict(opts["Ranker"])
    ranker = serve.deployment(name="Ranker", **ranker_opts)(Ranker).bind(settings)
    gateway_opts = {"num_replicas": alive_nodes(), **opts["Gateway"]}
    gateway = serve.deployment(name="Gateway", **gateway_opts)(Gateway).bind(
        settings, ranker, shards, writers, ranking_replicas=most_replicas(ranker_opts))
    return gateway


def app_builder(args: dict[str, str]) -> Application:
    """``serve deploy serve_config.yaml``: settings from the environment of the nodes."""
    if args:
        raise ValueError(f"leaderboard takes no application args (got {sorted(args)}); "
                         "configure it through the environment (README, Configuration)")
    return build_app(Settings())  # type: ignore[call-arg]
