"""Write-behind: shard stream events -> one Postgres upsert per batch -> ack."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import ResponseError

from leaderboard.keys import Keys
from leaderboard.models import ScoreEvent
from leaderboard.pipeline import stream
from leaderboard.pipeline.db import UPSERT
from leaderboard.pipeline.stream import Delivery

log = logging.getLogger(__name__)


def latest_per_user(events: list[ScoreEvent]) -> list[ScoreEvent]:
    """One event per user (the highest version), sorted by user_id so writers lock in one order."""
    best: dict[str, ScoreEvent] = {}
    for ev in events:
        cur = best.get(ev.user_id)
        if cur is None or ev.version > cur.version:
            best[ev.user_id] = ev
    return [best[k] for k in sorted(best)]


async def upsert(conn: asyncpg.Pool | asyncpg.Connection, events: list[ScoreEvent]) -> None:
    """Store a batch in one statement; an older version never overwrites a newer one."""
    rows = latest_per_user(events)
    await conn.execute(
        UPSERT,
        [e.user_id for e in rows],
        [e.name for e in rows],
        [e.region for e in rows],
        [e.score for e in rows],
        [e.version for e in rows],
        [e.reached for e in rows],
        [e.ts for e in rows],
    )


@dataclass
class WriterStats:
    events: int = 0
    batches: int = 0
    dead_lettered: int = 0
    errors: int = 0
    last_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class StreamWriter:
    """One consumer of the writers' group over every shard stream."""

    def __init__(
        self,
        redis: aioredis.Redis,
        pg: asyncpg.Pool,
        keys: Keys,
        shards: list[str],
        consumer: str,
        *,
        batch_size: int,
        block_ms: int,
        claim_idle_ms: int,
    ) -> None:
        self._redis = redis
        self._pg = pg
        self._keys = keys
        self._streams = [keys.stream(s) for s in shards]
        self._consumer = consumer
        self._batch = batch_size
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._recovering = True
        self._next_claim = 0.0
        self.stats = WriterStats()

    async def start(self) -> None:
        await stream.ensure_groups(self._redis, self._streams)

    async def step(self) -> int:
        """Move one batch into Postgres; returns the number of entries acknowledged."""
        try:
            batch = await self._next_batch()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await stream.ensure_groups(self._redis, self._streams)  # Redis lost its data
            return 0
        if not batch:
            return 0
        events, dead = self._parse(batch)
        if events:
            await upsert(self._pg, events)
        if dead:
            await self._dead_letter(dead)
        await stream.ack(self._redis, batch)
        self.stats.events += len(events)
        self.stats.batches += 1
        return len(batch)

    def recover(self) -> None:
        """After a failed batch: re-read own pending entries before taking new ones."""
        self._recovering = True

    async def _next_batch(self) -> list[Delivery]:
        r, me = self._redis, self._consumer
        if self._recovering:
            batch = await stream.read(r, me, self._streams, "0", self._batch, None)
            if batch:
                return batch
            self._recovering = False
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self._claim_idle_ms / 2000
            batch = await stream.claim_idle(r, me, self._streams, self._claim_idle_ms, self._batch)
            if batch:
                return batch
        return await stream.read(r, me, self._streams, ">", self._batch, self._block_ms)

    def _parse(self, batch: list[Delivery]) -> tuple[list[ScoreEvent], list[tuple[Delivery, str]]]:
        events: list[ScoreEvent] = []
        dead: list[tuple[Delivery, str]] = []
        for d in batch:
            if d.fields is None:
                continue  # deleted after a previous commit: only the ack is left to do
            try:
                events.append(ScoreEvent.model_validate(d.fields))
            except ValidationError as exc:
                dead.append((d, str(exc.errors(include_url=False))[:500]))
        return events, dead

    async def _dead_letter(self, dead: list[tuple[Delivery, str]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for d, reason in dead:
                shard = d.stream.rsplit(":", 1)[-1]
                fields = dict(d.fields or {})
                fields.update({"_error": reason, "_source_id": d.entry_id})
                pipe.xadd(self._keys.dead(shard), fields)  # type: ignore[arg-type]
            await pipe.execute()
        self.stats.dead_lettered += len(dead)
        log.error("%s: %d malformed events moved to dead-letter streams", self._consumer, len(dead))
