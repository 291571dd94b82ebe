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

from leaderboard.pipeline.db import ensure_database
from leaderboard.pipeline.pool import writer_actor_name
from leaderboard.settings import Settings
from leaderboard.shards import Topology
from tests.e2e.servers import OwnRedis


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


def deploy(
    settings: Settings, name: str, prefix: str, **overrides: dict[str, Any]
) -> Service:
    """Run one application of the whole graph on the started Serve, and wait until healthy.

    Deployment options come from the checked-in serve_config.yaml, with ``overrides`` per
    deployment name (e.g. ``Gateway={"num_replicas": 2}``) merged over them.
    """
    import ray
    from ray import serve

    from leaderboard.serve.app import build_app
    from leaderboard.serve.config import load, with_overrides

    config = load()
    options = with_overrides(config.deployments, **overrides)
    serve.run(build_app(settings, options), name=name, route_prefix=prefix,
              logging_config=config.logging_config)
    writers = [
        ray.get_actor(writer_actor_name(settings, i), namespace=settings.ray_namespace)
        for i in range(settings.writer_pool_size)
    ]
    base = f"http://127.0.0.1:{settings.port}{prefix.rstrip('/')}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"{base}/health", timeout=2)
            if health.status_code == 200 and health.json()["warming"] is False:
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
    ray.init(address="local", num_cpus=12, include_dashboard=False, namespace=settings.ray_namespace,
             log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": settings.port})
        yield deploy(settings, "leaderboard", "/")
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """The test Redis index as the running app sees it (not emptied: see ``clean``)."""
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def pg(pg_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The test database as the running app sees it (not emptied: see ``clean``)."""
    return pg_pool


def app_client(service: Service) -> httpx.AsyncClient:
    """An HTTP client for one of the suite's apps, for ``async with``."""
    return httpx.AsyncClient(base_url=service.base_url, timeout=30,
                             limits=httpx.Limits(max_connections=64))


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(service) as c:
        yield c


@pytest.fixture
async def clean(service: Service, redis: aioredis.Redis, pg: asyncpg.Pool) -> AsyncIterator[None]:
    """Empty boards, streams and tables.

    First everything earlier tests wrote reaches Postgres (so no shard replays it later), then
    the writers pause, both stores are emptied, and the board is rebuilt (empty) by its guard.
    """
    await wait_drained(redis, service.settings)
    await wait_stored(service)
    await service.pause_writers()
    await pg.execute("TRUNCATE leaderboard, credentials")
    await redis.flushdb()
    await service.resume_writers()
    await wait_warm(service)
    yield


async def wait_stored(service: Service, timeout: float = 30) -> None:
    """Until no shard holds a write that Postgres may lack."""
    import ray

    from leaderboard.actors.router import shard_actor_name
    from leaderboard.shards import Topology

    s = service.settings
    shards = [ray.get_actor(shard_actor_name(s, shard), namespace=s.ray_namespace)
              for shard in Topology.of(s).all_shards()]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(await asyncio.gather(*(h.unstored_count.remote() for h in shards))) == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("shards still hold writes Postgres lacks")


async def wait_warm(service: Service, timeout: float = 30) -> None:
    """Until /health says the board is complete (not warming)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=service.base_url, timeout=5) as c:
        while time.monotonic() < deadline:
            body = (await c.get("/health")).json()
            if body.get("warming") is False:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("board still warming")


async def until_sql(pg: asyncpg.Pool, sql: str, *args: object, timeout: float = 30) -> None:
    """Until ``sql`` answers a true value (the service catching up: drains, purges, archives)."""
    deadline = time.monotonic() + timeout
    while not await pg.fetchval(sql, *args):
        assert time.monotonic() < deadline, sql
        await asyncio.sleep(0.2)


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
    """Until every shard stream is empty (all events stored and acknowledged), on every instance."""
    from leaderboard.keys import Keys
    from leaderboard.shards import Topology

    keys = Keys(settings.board)
    topology = Topology.of(settings)
    clients = {url: redis if url == settings.redis_url else
               aioredis.Redis.from_url(url, decode_responses=True) for url in topology.urls()}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            lengths = [await clients[topology.url_of_shard(s)].xlen(keys.stream(s))
                       for s in topology.all_shards()]
            if sum(lengths) == 0:
                return
            await asyncio.sleep(0.1)
    finally:
        for url, client in clients.items():
            if url != settings.redis_url:
                await client.aclose()
    raise AssertionError(f"streams not drained after {timeout}s: {lengths}")


QUEUE_LIMIT = 40


def s_db(service: Service, board: str) -> str:
    """Each board has a database of its own (the durable record is per board)."""
    return f"{service.settings.database_name()}_{board}"


@pytest.fixture(scope="session")
def limited(service: Service) -> Service:
    """Two gateway replicas; 5 writes per user per minute; backlog limit 40; 5 sign-ups/min/address."""
    s = service.settings.model_copy(update={
        "board": "rl", "regions": "GLOBAL,EU,NA", "writer_pool_size": 1,
        "rate_limits_enabled": True, "user_rate_limit_count": 5, "user_rate_limit_window": 60.0,
        "region_rate_limit_per_sec": 20000, "queue_reject_length": QUEUE_LIMIT,
        "auth_rate_limit_count": 5, "auth_rate_limit_window": 60.0,
        "auth_rate_limit_global_per_sec": 1000,
        "pgdatabase": s_db(service, "rl"),
    })
    asyncio.run(ensure_database(s))
    # two gateways on this one node: lift the one-per-node spread
    return deploy(s, "limited", "/rl",
                  Gateway={"num_replicas": 2, "max_replicas_per_node": None})


@pytest.fixture(scope="session")
def refilling(service: Service) -> Service:
    """4 writes per user per 2 s (refill 2/s); 10 writes per second per region."""
    s = service.settings.model_copy(update={
        "board": "rf", "regions": "GLOBAL,EU,NA", "writer_pool_size": 1,
        "rate_limits_enabled": True, "user_rate_limit_count": 4, "user_rate_limit_window": 2.0,
        "region_rate_limit_per_sec": 10, "queue_reject_length": 0, "auth_rate_limit_count": 0,
        "auth_rate_limit_global_per_sec": 0,
        "pgdatabase": s_db(service, "rf"),
    })
    asyncio.run(ensure_database(s))
    return deploy(s, "refilling", "/rf")


@pytest.fixture
async def rl(limited: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(limited) as c:
        yield c


@pytest.fixture
async def rf(refilling: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(refilling) as c:
        yield c


# -- two Redis instances (EU and ASIA on a second one): used by test_shards and test_seasons --

SHARDED_REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]
SHARDED_BOARD = "shd"


@dataclass
class Sharded:
    app: Service
    second: OwnRedis
    topology: Topology


async def forget_board(settings_url: str, dsn: str) -> None:
    """Earlier runs' keys of this board on the shared Redis, and its rows."""
    r = aioredis.Redis.from_url(settings_url, decode_responses=True)
    async for key in r.scan_iter(match=f"lb:{SHARDED_BOARD}:*", count=1000):
        await r.delete(key)
    await r.aclose()
    pg = await asyncpg.connect(dsn)
    await pg.execute("TRUNCATE leaderboard, credentials")
    await pg.close()


@pytest.fixture(scope="session")
def sharded(service: Service) -> Iterator[Sharded]:


    second = OwnRedis(persistent=False)
    second.start()
    s = service.settings.model_copy(update={
        "board": SHARDED_BOARD, "regions": ",".join(SHARDED_REGIONS), "writer_pool_size": 1,
        "redis_shards": f"EU={second.url},ASIA={second.url}", "region_splits": "EU=3",
        "rate_limits_enabled": False, "pgdatabase": s_db(service, SHARDED_BOARD),
    })
    asyncio.run(ensure_database(s))
    asyncio.run(forget_board(s.redis_url, s.dsn()))
    topology = Topology.of(s)
    try:
        yield Sharded(deploy(s, "shards", "/shd"), second, topology)
    finally:
        undeploy(s, "shards")
        second.stop()


def delete_app(app: str) -> None:
    """Delete a Serve app without waiting for it to be gone: its replicas drain for ~3 s
    (Serve's graceful shutdown loop) while the next tests run, instead of before them. A later
    deploy that needs their CPU shares waits for its own replicas anyway (``deploy``)."""
    from ray import serve

    serve.delete(app, _blocking=False)


def undeploy(s: Settings, app: str) -> None:
    """Delete an app of its own namespace (``BOARD``) and its shard and writer actors: their
    replicas hold CPU shares of the local Ray that later apps need, their loops real CPU."""
    import ray

    from leaderboard.actors.router import shard_actor_name

    delete_app(app)
    names = [shard_actor_name(s, x) for x in Topology.of(s).all_shards()]
    names += [writer_actor_name(s, i) for i in range(s.writer_pool_size)]
    for name in names:
        try:
            ray.kill(ray.get_actor(name, namespace=s.ray_namespace))
        except ValueError:
            pass
