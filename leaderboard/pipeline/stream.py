"""The shard streams seen through the writers' consumer group."""

from __future__ import annotations

from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from leaderboard.keys import WRITERS_GROUP, Keys
from leaderboard.redis_client import run_script_many


class Delivery(NamedTuple):
    """One stream entry handed to a writer; ``fields`` is None when it was deleted."""

    stream: str
    entry_id: str
    fields: dict[str, str] | None


async def ensure_groups(redis: aioredis.Redis, streams: list[str]) -> None:
    """Create the writers' group on every stream, from the start (``0``) so nothing is skipped."""
    for stream in streams:
        try:
            await redis.xgroup_create(stream, WRITERS_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


async def shards_to_drain(redis: aioredis.Redis, keys: Keys, shards: list[str]) -> list[str]:
    """``shards`` and every other shard of the board that still has a stream on this instance.

    A stream outlives its shard when a settings change removes the shard (a lower
    ``REGION_SPLITS``, a region mapped to another instance): its events were acknowledged to
    clients and must still reach Postgres, so the writers drain it too.
    """
    prefix = keys.stream("")
    found = {str(name)[len(prefix):] async for name in redis.scan_iter(
        match=keys.stream("*"), count=1000, _type="STREAM")}
    return shards + sorted(found - set(shards))


def id_key(entry_id: str) -> tuple[int, int]:
    """Stream IDs ``ms-seq`` in numeric order."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def flatten(reply: Any) -> list[Delivery]:
    """XREADGROUP's reply as a flat list of deliveries."""
    return [Delivery(stream, entry_id, fields or None)
            for stream, entries in reply or [] for entry_id, fields in entries]


async def read(
    redis: aioredis.Redis, consumer: str, streams: list[str], start: str, count: int, block_ms: int | None
) -> list[Delivery]:
    """Read own pending entries (``start='0'``) or new ones (``start='>'``)."""
    reply = await redis.xreadgroup(
        WRITERS_GROUP, consumer, {s: start for s in streams}, count=count, block=block_ms
    )
    return flatten(reply)


async def claim_idle(
    redis: aioredis.Redis, consumer: str, streams: list[str], min_idle_ms: int, count: int
) -> list[Delivery]:
    """Take over entries another (dead) consumer left pending for longer than ``min_idle_ms``."""
    out: list[Delivery] = []
    for stream in streams:
        reply = await redis.xautoclaim(stream, WRITERS_GROUP, consumer, min_idle_ms, "0-0", count=count)
        for entry_id, fields in reply[1]:
            out.append(Delivery(stream, entry_id, fields or None))
        for entry_id in reply[2] if len(reply) > 2 else []:
            out.append(Delivery(stream, entry_id, None))
    return out


async def ack(redis: aioredis.Redis, script: AsyncScript, deliveries: list[Delivery]) -> None:
    """Acknowledge and delete stored entries, so XLEN is the backlog: ``script`` (ACK_DELETE)
    once per stream, all in one round trip. An error reply (NOGROUP: Redis lost its data)
    raises."""
    by_stream: dict[str, list[str]] = {}
    for d in deliveries:
        by_stream.setdefault(d.stream, []).append(d.entry_id)
    calls = [([name], [WRITERS_GROUP, " ".join(ids)]) for name, ids in by_stream.items()]
    for reply in await run_script_many(redis, script, calls):
        if isinstance(reply, Exception):
            raise reply
