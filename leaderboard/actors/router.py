"""User -> shard routing and the named, restartable shard actors (one per shard)."""

from __future__ import annotations

from typing import Any

import ray

from leaderboard.actors.placement import placement_options
from leaderboard.actors.shard_actor import RegionShardActor
from leaderboard.settings import Settings
from leaderboard.shards import Topology, region_of


def shard_for(topology: Topology, region: str, user_id: str) -> str:
    """The shard that owns a user's writes: the region's, or its ring's pick when split."""
    return topology.shard_for(region, user_id)


def shard_actor_name(settings: Settings, shard: str) -> str:
    return f"{settings.board}-shard-{shard}"


def ensure_shards(settings: Settings) -> dict[str, Any]:
    """Create (or find) one detached, restartable shard actor per shard, keyed by shard name.

    Task events are off: every micro-batch is a call, and the GCS would keep each one's
    events (docs/operations.md). Handles found by name or passed to Serve keep the setting.
    """
    remote_cls = ray.remote(RegionShardActor)
    handles: dict[str, Any] = {}
    for shard in Topology.of(settings).all_shards():
        handles[shard] = remote_cls.options(
            name=shard_actor_name(settings, shard),
            namespace=settings.ray_namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=1000,
            num_cpus=0,
            enable_task_events=False,
            **placement_options(settings, region_of(shard)),
        ).remote(settings, shard)
    return handles
