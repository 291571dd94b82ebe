"""Where each region and user lives: Redis instances (``REDIS_SHARDS``) and shards (``REGION_SPLITS``).

A region lives on one Redis instance (``REDIS_URL`` unless ``REDIS_SHARDS`` maps it elsewhere);
GLOBAL always lives on ``REDIS_URL``. A region split over N shards hashes its users onto a ring
of virtual nodes (consistent hashing), so going from N to N+1 shards moves about 1/(N+1) of its
users, all of them to the new shard. Shard names: the region itself for the first (so a region
that starts splitting keeps its stream), then ``REGION.1`` ... ``REGION.{N-1}``. All shards of a
region live on the region's instance, so the region board, its users' hashes and its token
bucket stay in one place and one script keeps updating them atomically.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from leaderboard.settings import GLOBAL, StoreSettings

VIRTUAL_NODES = 160


def stable_hash(text: str) -> int:
    """64-bit blake2b of ``text``: the same in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing of user ids onto shards, ``vnodes`` points per shard."""

    def __init__(self, shards: list[str], vnodes: int = VIRTUAL_NODES) -> None:
        points = sorted((stable_hash(f"{shard}#{i}"), shard) for shard in shards for i in range(vnodes))
        self._hashes = [h for h, _ in points]
        self._shards = [s for _, s in points]

    def shard_for(self, user_id: str) -> str:
        """The shard owning the first ring point at or after the user's hash (wrapping round)."""
        i = bisect.bisect_left(self._hashes, stable_hash(user_id))
        return self._shards[i % len(self._shards)]


def split_names(region: str, count: int) -> list[str]:
    """Shard names of a region split ``count`` ways: ``EU``, ``EU.1``, ..."""
    return [region, *(f"{region}.{i}" for i in range(1, count))]


def region_of(shard: str) -> str:
    """The region a shard name belongs to."""
    return shard.split(".", 1)[0]


def redacted(url: str) -> str:
    """An instance's URL without credentials, for health answers and logs."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


@dataclass(frozen=True)
class Topology:
    """Regions -> Redis instances and shards, built once from the settings."""

    global_url: str
    regions: list[str]
    instance: dict[str, str] = field(default_factory=dict)  # region -> URL
    shards: dict[str, list[str]] = field(default_factory=dict)  # region -> shard names
    rings: dict[str, HashRing] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: StoreSettings) -> Topology:
        mapped, splits = settings.shard_map(), settings.splits()
        regions = settings.region_list
        shards = {r: split_names(r, splits.get(r, 1)) for r in regions}
        return cls(
            global_url=settings.redis_url,
            regions=regions,
            instance={r: mapped.get(r, settings.redis_url) for r in regions},
            shards=shards,
            rings={r: HashRing(s) for r, s in shards.items() if len(s) > 1},
        )

    def shard_for(self, region: str, user_id: str) -> str:
        """The shard that owns this user's writes."""
        ring = self.rings.get(region)
        return ring.shard_for(user_id) if ring else region

    def all_shards(self) -> list[str]:
        return [s for r in self.regions for s in self.shards[r]]

    def url_of_shard(self, shard: str) -> str:
        return self.instance[region_of(shard)]

    def urls(self) -> list[str]:
        """Every Redis instance, GLOBAL's first."""
        return list(dict.fromkeys([self.global_url, *self.instance.values()]))

    def shards_on(self, url: str) -> list[str]:
        return [s for s in self.all_shards() if self.url_of_shard(s) == url]

    def is_remote(self, region: str) -> bool:
        """Whether the region lives on another instance than GLOBAL (its writes fold into GLOBAL)."""
        return self.instance[region] != self.global_url

    def remote_shards(self) -> list[str]:
        return [s for s in self.all_shards() if self.is_remote(region_of(s))]

    def boards_on(self, url: str, region: str) -> str:
        """Which of a user's boards instance ``url`` holds: 'g' GLOBAL, 'r' the region's, or both.

        A user's hash lives wherever one of their boards does (on GLOBAL's instance it mirrors the
        region instance's hash, so GLOBAL reads find names and members there).
        """
        boards = "g" if url == self.global_url else ""
        if region != GLOBAL and self.instance.get(region) == url:
            boards += "r"
        return boards
