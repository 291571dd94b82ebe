"""Write-behind: shard stream events -> one Postgres upsert per batch -> ack."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from leaderboard.apply_scripts import ACK_DELETE
from leaderboard.fold import GlobalFold
from leaderboard.keys import WRITERS_GROUP, Keys
from leaderboard.models import ScoreEvent
from leaderboard.pipeline import events as wire
from leaderboard.pipeline import stream
from leaderboard.pipeline.db import UPSERT
from leaderboard.pipeline.events import BadEvent, StoredEvent
from leaderboard.pipeline.stream import Delivery

if TYPE_CHECKING:
    from leaderboard.metrics.record import WriterMetrics

log = logging.getLogger(__name__)

Dead = tuple[Delivery, str]
# Postgres refusing the data itself (not an outage): retrying cannot help
# Dead letters are alerted (/health, check_queue) and bounded: if every event failed, the
# stream would otherwise grow at the write rate. Redis still holds those writes (reconcile).
DEAD_MAXLEN = 100_000
POISON = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
Event = TypeVar("Event", ScoreEvent, StoredEvent)


def latest_per_user(events: Sequence[Event]) -> list[Event]:
    """One event per (board, season, user) (the highest version), sorted by that key so writers
    lock rows in one order."""
    best: dict[tuple[str, int, str], Event] = {}
    for ev in events:
        slot = (ev.board, ev.season, ev.user_id)
        cur = best.get(slot)
        if cur is None or ev.version > cur.version:
            best[slot] = ev
    return [best[k] for k in sorted(best)]


async def upsert(
    conn: asyncpg.Pool | asyncpg.Connection, events: Sequence[ScoreEvent | StoredEvent]
) -> None:
    """Store a batch in one statement; an older version never overwrites a newer one."""
    rows = latest_per_user([row(e) for e in events])
    if rows:
        await conn.execute(UPSERT, *(list(column) for column in zip(*rows, strict=True)))


def entry_ages(deliveries: Sequence[Delivery], now_s: float) -> list[float]:
    """Seconds since each entry entered its stream (its id's milliseconds: Redis's clock)."""
    return [max(0.0, now_s - int(d.entry_id.split("-", 1)[0]) / 1000) for d in deliveries]


def row(e: ScoreEvent | StoredEvent) -> StoredEvent:
    """An event in the scripts' field order."""
    if isinstance(e, StoredEvent):
        return e
    return StoredEvent(e.user_id, e.name, e.region, e.score, e.version, e.reached, e.ts, e.board,
                       e.season, e.metadata)


@dataclass
class WriterStats:
    events: int = 0
    batches: int = 0
    dead_lettered: int = 0
    errors: int = 0
    last_error: str = ""


class StreamWriter:
    """One consumer of the writers' group over the shard streams of one Redis instance.

    With ``fold`` (the instance is not GLOBAL's), each batch is also folded into GLOBAL before
    it is acknowledged: the safety net behind the shards' own fold.
    """

    dead_maxlen = DEAD_MAXLEN  # about: Redis trims whole nodes (~100 entries) at a time

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
        linger_ms: int = 0,
        max_deliveries: int = 5,
        fold: GlobalFold | None = None,
        metrics: WriterMetrics | None = None,
    ) -> None:
        self._fold = fold
        self._metrics = metrics
        self._redis = redis
        self._ack = redis.register_script(ACK_DELETE)
        self._pg = pg
        self._keys = keys
        self._streams = [keys.stream(s) for s in shards]
        self._consumer = consumer
        self._batch = batch_size
        self._block_ms = block_ms
        self._linger_s = linger_ms / 1000
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._recovering = True
        self._check_deliveries = False
        self._retry: list[Delivery] | None = None
        self._prefetch: asyncio.Future[list[Delivery]] | None = None
        self._next_claim = 0.0
        self.stats = WriterStats()

    async def start(self) -> None:
        await stream.ensure_groups(self._redis, self._streams)

    async def step(self) -> int:
        """Move one batch into Postgres; returns the number of entries acknowledged.

        A batch that fails (Postgres or Redis unreachable) is kept and retried as it is, so
        retries during an outage do not count as deliveries; only a restart or a takeover does.
        """
        if self._retry is not None:
            batch = self._retry
        else:
            try:
                batch = await self._take_batch()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await stream.ensure_groups(self._redis, self._streams)  # Redis lost its data
                return 0
        if not batch:
            return 0
        self._retry = batch
        if self._prefetch is None and not self._recovering:
            # read the next batch while this one is parsed, stored and acknowledged; if this
            # writer dies, both are still pending for it and its restart reads them again
            self._prefetch = asyncio.ensure_future(self._read_new())
        events, dead = self._parse(batch)
        dead += await self._too_often_delivered(batch, events)
        gone = {d.entry_id for d, _ in dead}
        pairs = [(d, e) for d, e in zip(batch, events, strict=True)
                 if e is not None and d.entry_id not in gone]
        upsert_s, lags = None, []
        if pairs:
            started = time.monotonic()
            dead += await self._store(pairs)
            upsert_s = time.monotonic() - started
            refused = {d.entry_id for d, _ in dead}
            lags = entry_ages([d for d, _ in pairs if d.entry_id not in refused], time.time())
            if self._fold is not None:  # FoldDeferred: the batch stays pending, tried again
                await self._fold.apply_stored([e for _, e in pairs], "net")
        if dead:
            await self._dead_letter(dead)
        try:
            await stream.ack(self._redis, self._ack, batch)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await stream.ensure_groups(self._redis, self._streams)  # stored; nothing to ack
        self._retry = None
        self.stats.events += len(pairs)
        self.stats.batches += 1
        if self._metrics is not None:
            self._metrics.batch(len(batch), upsert_s, lags)
        return len(batch)

    async def _store(self, pairs: list[tuple[Delivery, StoredEvent]]) -> list[Dead]:
        """Upsert the batch; if Postgres refuses its data, row by row, and return the refused."""
        try:
            await upsert(self._pg, [e for _, e in pairs])
            return []
        except POISON as exc:
            log.error("%s: batch refused by Postgres (%s); storing row by row", self._consumer, exc)
        refused: list[Dead] = []
        for delivery, event in pairs:
            try:
                await upsert(self._pg, [event])
            except POISON as exc:
                refused.append((delivery, repr(exc)[:300]))
        return refused

    async def _too_often_delivered(
        self, batch: list[Delivery], events: list[StoredEvent | None]
    ) -> list[Dead]:
        """Entries delivered more than max_deliveries times (writers died on them): poison."""
        if not self._check_deliveries:
            return []
        self._check_deliveries = False
        counts: dict[str, int] = {}
        for name in {d.stream for d in batch}:
            ids = sorted((d.entry_id for d in batch if d.stream == name), key=stream.id_key)
            for p in await self._redis.xpending_range(
                name, WRITERS_GROUP, ids[0], ids[-1], len(ids) + 100
            ):
                counts[str(p["message_id"])] = int(p["times_delivered"])
        return [
            (d, f"delivered {counts[d.entry_id]} times without being stored")
            for d, e in zip(batch, events, strict=True)
            if e is not None and counts.get(d.entry_id, 0) > self._max_deliveries
        ]

    async def _take_batch(self) -> list[Delivery]:
        """The prefetched batch if there is one (and no claim is due), else a fresh read."""
        if self._prefetch is not None and time.monotonic() < self._next_claim:
            task, self._prefetch = self._prefetch, None
            batch = await task
            if batch:
                return batch
        return await self._next_batch()

    async def _read_new(self) -> list[Delivery]:
        """New entries; a read that found less than half a batch waits ``linger_ms`` once and
        takes what arrived meanwhile. A batch's fixed cost (the read, the Postgres transaction,
        the acknowledgement) is most of an event's cost when batches hold a handful."""
        batch = await stream.read(
            self._redis, self._consumer, self._streams, ">", self._batch, self._block_ms
        )
        if batch and self._linger_s > 0 and len(batch) < self._batch // 2:
            await asyncio.sleep(self._linger_s)
            batch += await stream.read(
                self._redis, self._consumer, self._streams, ">", self._batch - len(batch), None
            )
        return batch

    async def _next_batch(self) -> list[Delivery]:
        r, me = self._redis, self._consumer
        if self._recovering:  # after a (re)start: what this consumer held when it stopped
            batch = await stream.read(r, me, self._streams, "0", self._batch, None)
            if batch:
                self._check_deliveries = True
                return batch
            self._recovering = False
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self._claim_idle_ms / 2000
            batch = await stream.claim_idle(r, me, self._streams, self._claim_idle_ms, self._batch)
            if batch:
                self._check_deliveries = True
                return batch
        return await self._read_new()

    @staticmethod
    def _parse(batch: list[Delivery]) -> tuple[list[StoredEvent | None], list[Dead]]:
        """One event (or None) per delivery, and the deliveries that are not valid events.
        ``fields`` None: the entry was deleted after an earlier commit; it is only acked."""
        events: list[StoredEvent | None] = []
        dead: list[Dead] = []
        for d in batch:
            event = None
            if d.fields is not None:
                try:
                    event = wire.decode(d.fields)
                except BadEvent as exc:
                    dead.append((d, str(exc)[:500]))
            events.append(event)
        return events, dead

    async def _dead_letter(self, dead: list[Dead]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for d, reason in dead:
                shard = d.stream.rsplit(":", 1)[-1]
                fields = wire.named(d.fields or {})  # by name, whichever form the entry had
                fields.update({"_error": reason, "_source_id": d.entry_id})
                pipe.xadd(self._keys.dead(shard), fields,  # type: ignore[arg-type]
                          maxlen=self.dead_maxlen, approximate=True)
            await pipe.execute()
        self.stats.dead_lettered += len(dead)
        if self._metrics is not None:
            self._metrics.dead(Counter(d.stream.rsplit(":", 1)[-1] for d, _ in dead))
        log.error("%s: %d malformed events moved to dead-letter streams", self._consumer, len(dead))
