"""The writer pool: N restartable actors, each running one StreamWriter loop."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import ray

from leaderboard.actors.placement import writer_placement_options
from leaderboard.actors.router import shard_for
from leaderboard.keys import Keys
from leaderboard.pipeline.db import create_pool
from leaderboard.pipeline.writer import StreamWriter
from leaderboard.redis_client import connect
from leaderboard.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0


class Writer:
    """Actor body: loops step() forever, backing off while Redis or Postgres is down."""

    async def __init__(self, settings: Settings, index: int) -> None:  # type: ignore[misc]
        self._settings = settings
        self._consumer = f"writer-{index}"
        self._paused = asyncio.Event()
        self._paused.set()
        self._writer: StreamWriter | None = None
        self._stepping = asyncio.Lock()
        self._task = asyncio.create_task(self._run())

    async def _connect(self) -> StreamWriter:
        s = self._settings
        shards = sorted({shard_for(r) for r in s.region_list})
        writer = StreamWriter(
            connect(s.redis_url, retries=0),
            await create_pool(s, max_size=2),
            Keys(s.board),
            shards,
            self._consumer,
            batch_size=s.writer_batch_size,
            block_ms=s.writer_batch_wait_ms,
            claim_idle_ms=s.writer_claim_idle_ms,
            max_deliveries=s.writer_max_deliveries,
        )
        await writer.start()
        return writer

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            await self._paused.wait()
            try:
                async with self._stepping:
                    if not self._paused.is_set():
                        continue  # paused while waiting for the lock
                    if self._writer is None:
                        self._writer = await self._connect()
                    await self._writer.step()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: the batch stays pending and is retried
                log.warning("%s: batch failed (%s); retrying in %.1fs", self._consumer, exc, backoff)
                if self._writer is not None:
                    self._writer.stats.errors += 1
                    self._writer.stats.last_error = repr(exc)[:300]
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def pause(self) -> None:
        """Stop taking batches; returns once the batch in progress (if any) is stored."""
        self._paused.clear()
        async with self._stepping:
            pass

    async def resume(self) -> None:
        self._paused.set()

    async def stats(self) -> dict[str, Any]:
        st = self._writer.stats if self._writer else None
        return {
            "consumer": self._consumer,
            "pid": os.getpid(),
            "paused": not self._paused.is_set(),
            "connected": self._writer is not None,
            "events": st.events if st else 0,
            "batches": st.batches if st else 0,
            "errors": st.errors if st else 0,
            "dead_lettered": st.dead_lettered if st else 0,
            "last_error": st.last_error if st else "",
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
