"""The writer pool: N restartable actors, each running one StreamWriter loop per Redis instance."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import asyncpg
import ray

from leaderboard.actors.placement import writer_placement_options
from leaderboard.board_cache import BoardCache
from leaderboard.fold import GlobalFold
from leaderboard.heap import freeze_startup_heap
from leaderboard.keys import Keys
from leaderboard.metrics.record import GAUGE_PERIOD_S, WriterMetrics
from leaderboard.pipeline import stream
from leaderboard.pipeline.db import create_pool
from leaderboard.pipeline.writer import StreamWriter
from leaderboard.redis_client import connect
from leaderboard.serve.pg import Postgres
from leaderboard.settings import Settings
from leaderboard.shards import Topology, redacted

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0


class Writer:
    """Actor body: one StreamWriter loop per Redis instance, backing off while a store is down."""

    async def __init__(self, settings: Settings, index: int) -> None:  # type: ignore[misc]
        self._settings = settings
        self._consumer = f"writer-{index}"
        self._topology = Topology.of(settings)
        self._paused = asyncio.Event()
        self._paused.set()
        urls = [u for u in self._topology.urls() if self._topology.shards_on(u)]
        self._writers: dict[str, StreamWriter | None] = dict.fromkeys(urls)
        self._stepping = {url: asyncio.Lock() for url in urls}
        self._pg: asyncpg.Pool | None = None
        self._pg_lock = asyncio.Lock()
        self._boards: BoardCache | None = None
        self._metrics = WriterMetrics(settings.board, self._consumer)
        self._tasks = [asyncio.create_task(self._run(url)) for url in urls]
        self._tasks.append(asyncio.create_task(self._report()))
        freeze_startup_heap(settings)

    async def _connect(self, url: str) -> StreamWriter:
        s, topo = self._settings, self._topology
        async with self._pg_lock:
            if self._pg is None:
                self._pg = await create_pool(s, max_size=2 * len(self._writers))
        keys = Keys(s.board)
        fold = None
        if url != topo.global_url:
            fold = GlobalFold(connect(topo.global_url), keys, self._board_cache().lookup)
        redis = connect(url, retries=0)
        configured = topo.shards_on(url)
        shards = await stream.shards_to_drain(redis, keys, configured)
        if len(shards) > len(configured):
            log.warning("%s: draining streams of shards no longer configured on %s: %s",
                        self._consumer, redacted(url), shards[len(configured):])
        writer = StreamWriter(
            redis,
            self._pg,
            keys,
            shards,
            self._consumer,
            batch_size=s.writer_batch_size,
            block_ms=s.writer_batch_wait_ms,
            linger_ms=s.writer_linger_ms,
            claim_idle_ms=s.writer_claim_idle_ms,
            max_deliveries=s.writer_max_deliveries,
            fold=fold,
            metrics=self._metrics,
        )
        await writer.start()
        return writer

    def _board_cache(self) -> BoardCache:
        """The boards of the events this writer folds into GLOBAL (one cache per actor)."""
        if self._boards is None:
            s = self._settings
            self._boards = BoardCache(Postgres(s, max_size=1), connect(s.redis_url), Keys(s.board))
            self._tasks.append(asyncio.create_task(self._boards.run()))
        return self._boards

    async def _run(self, url: str) -> None:
        backoff = 0.1
        while True:
            await self._paused.wait()
            writer = self._writers[url]
            try:
                async with self._stepping[url]:
                    if not self._paused.is_set():
                        continue  # paused while waiting for the lock
                    if writer is None:
                        writer = self._writers[url] = await self._connect(url)
                    await writer.step()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: the batch stays pending and is retried
                log.warning("%s: batch from %s failed (%s); retrying in %.1fs",
                            self._consumer, redacted(url), exc, backoff)
                self._metrics.error()
                if writer is not None:
                    writer.stats.errors += 1
                    writer.stats.last_error = repr(exc)[:300]
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _report(self) -> None:
        """Set the paused gauge again and again (Ray forgets a gauge that is not)."""
        while True:
            self._metrics.paused(not self._paused.is_set())
            await asyncio.sleep(GAUGE_PERIOD_S)

    async def pause(self) -> None:
        """Stop taking batches; returns once the batches in progress (if any) are stored."""
        self._paused.clear()
        self._metrics.paused(True)
        for lock in self._stepping.values():
            async with lock:
                pass

    async def resume(self) -> None:
        self._paused.set()
        self._metrics.paused(False)

    async def stats(self) -> dict[str, Any]:
        stats = [w.stats for w in self._writers.values() if w is not None]
        return {
            "consumer": self._consumer,
            "pid": os.getpid(),
            "paused": not self._paused.is_set(),
            "connected": len(stats) == len(self._writers),
            "events": sum(st.events for st in stats),
            "batches": sum(st.batches for st in stats),
            "errors": sum(st.errors for st in stats),
            "dead_lettered": sum(st.dead_lettered for st in stats),
            "last_error": next((st.last_error for st in stats if st.last_error), ""),
        }


def writer_actor_name(settings: Settings, index: int) -> str:
    return f"{settings.board}-writer-{index}"


def ensure_writers(settings: Settings) -> list[Any]:
    """Create (or find) the pool of detached, restartable writer actors."""
    remote_cls = ray.remote(Writer)
    return [
        remote_cls.options(
            name=writer_actor_name(settings, i),
            namespace=settings.ray_namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=-1,
            max_concurrency=100,
            num_cpus=0,
            **writer_placement_options(settings),
        ).remote(settings, i)
        for i in range(settings.writer_pool_size)
    ]
