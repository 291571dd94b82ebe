"""Region -> shard routing and the named, restartable shard actors."""

from __future__ import annotations

from typing import Any

import ray

from leaderboard.actors.placement import placement_options
from leaderboard.actors.shard import RegionShardActor
from leaderboard.settings import Settings


def shard_for(region: str) -> str:
    """The shard that owns a region's writes (one shard per region for now)."""
    return region


def shard_actor_name(settings: Settings, shard: str) -> str:
    return f"{settings.board}-shard-{shard}"


def ensure_shards(settings: Settings) -> dict[str, Any]:
    """Create (or find) one detached, restartable shard actor per region."""
    remote_cls = ray.remote(RegionShardActor)
    handles: dict[str, Any] = {}
    for region in settings.region_list:
        shard = shard_for(region)
        handles[region] = remote_cls.options(
            name=shard_actor_name(settings, shard),
            namespace=settings.ray_namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=1000,
            num_cpus=0,
            **placement_options(settings, region),
        ).remote(settings, shard)
    return handles
