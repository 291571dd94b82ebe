"""A real local Ray Serve instance of the whole app, shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from leaderboard.pipeline.pool import writer_actor_name
from leaderboard.settings import Settings


@dataclass
class Service:
    """The running app: its URL, settings and writer actors."""

    base_url: str
    settings: Settings
    writers: list[Any]

    async def pause_writers(self) -> None:
        await asyncio.gather(*(w.pause.remote() for w in self.writers))

    async def resume_writers(self) -> None:
        await asyncio.gather(*(w.resume.remote() for w in self.writers))


def deploy(settings: Settings, name: str, prefix: str) -> Service:
    """Run one application of the whole graph on the started Serve, and wait until healthy."""
    import ray
    from ray import serve

    from leaderboard.serve.app import QUIET_LOGS, build_app

    serve.run(build_app(settings), name=name, route_prefix=prefix, logging_config=QUIET_LOGS)
    writers = [
        ray.get_actor(writer_actor_name(settings, i), namespace=settings.ray_namespace)
        for i in range(settings.writer_pool_size)
    ]
    base = f"http://127.0.0.1:{settings.port}{prefix.rstrip('/')}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return Service(base, settings, writers)


@pytest.fixture(scope="session")
def service(settings: Settings) -> Iterator[Service]:
    """The app with limits off, at /."""
    import ray
    from ray import serve

    from leaderboard.pipeline.db import ensure_database

    asyncio.run(ensure_database(settings))
    ray.init(num_cpus=8, include_dashboard=False, namespace=settings.ray_namespace,
             log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": settings.port})
        yield deploy(settings, "leaderboard", "/")
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30, limits=limits) as c:
        yield c


@pytest.fixture
async def clean(service: Service, redis: aioredis.Redis, pg: asyncpg.Pool) -> AsyncIterator[None]:
    """Empty boards, streams and tables (writers paused meanwhile so nothing old lands after)."""
    await service.pause_writers()
    await asyncio.sleep(0.1)
    await redis.flushdb()
    await pg.execute("TRUNCATE leaderboard, credentials")
    await service.resume_writers()
    yield


def uid(prefix: str = "u") -> str:
    """A user id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def register(
    client: httpx.AsyncClient, user_id: str, region: str = "EU", **extra: Any
) -> str:
    """Register a user and return their token."""
    body = {"user_id": user_id, "name": f"Name {user_id}", "region": region,
            "password": "correct horse battery", **extra}
    r = await client.post("/auth/register", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_drained(redis: aioredis.Redis, settings: Settings, timeout: float = 30) -> None:
    """Until every shard stream is empty (all events stored and acknowledged)."""
    from leaderboard.keys import Keys

    keys = Keys(settings.board)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lengths = [await redis.xlen(keys.stream(r)) for r in settings.region_list]
        if sum(lengths) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"streams not drained after {timeout}s: {lengths}")
