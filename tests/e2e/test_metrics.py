"""Metrics as Prometheus scrapes them from Ray's own metrics agent (a real HTTP scrape), after a
known set of writes, refusals, a paused writer, a dead letter, a Redis data loss and a live
stream, on an app of its own: namespace ``mt``, EU on a second Redis instance (so GLOBAL folds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from leaderboard.keys import Keys
from leaderboard.metrics.specs import SERVE_METRICS
from leaderboard.serve.auth import issue_token
from leaderboard.settings import Settings
from tests.e2e.conftest import (
    Service,
    app_client,
    bearer,
    deploy,
    s_db,
    uid,
    undeploy,
    wait_drained,
)
from tests.e2e.live_client import live
from tests.e2e.servers import OwnRedis

NS = "mt"
QUEUE_LIMIT = 4


@dataclass
class Metered:
    app: Service
    eu: OwnRedis  # EU's instance


@pytest.fixture(scope="module")
def metered(service: Service) -> Iterator[Metered]:
    """3 writes per user (per 10 min), EU's backlog limit 4, one sign-up per address."""
    eu = OwnRedis(persistent=False)
    eu.start()
    s = service.settings.model_copy(update={
        "board": NS, "regions": "GLOBAL,EU", "writer_pool_size": 1,
        "redis_shards": f"EU={eu.url}", "rate_limits_enabled": True,
        "user_rate_limit_count": 3, "user_rate_limit_window": 600.0,
        "region_rate_limit_per_sec": 0, "queue_reject_length": QUEUE_LIMIT,
        "auth_rate_limit_count": 1, "auth_rate_limit_window": 600.0,
        "auth_rate_limit_global_per_sec": 0, "metrics_boards": "default",
        "pgdatabase": s_db(service, NS),
    })
    from leaderboard.pipeline.db import ensure_database

    asyncio.run(ensure_database(s))
    asyncio.run(forget(s))
    try:
        yield Metered(deploy(s, "metrics", f"/{NS}"), eu)
    finally:
        undeploy(s, "metrics")
        eu.stop()


async def forget(s: Settings) -> None:
    """Earlier runs' keys of namespace mt and its rows."""
    import asyncpg

    r = aioredis.Redis.from_url(s.redis_url)
    async for key in r.scan_iter(match=f"lb:{NS}:*", count=1000):
        await r.delete(key)
    await r.aclose()
    pg = await asyncpg.connect(s.dsn())
    await pg.execute("TRUNCATE leaderboard, credentials, erased_users")
    await pg.close()


def metrics_url() -> str:
    """Ray's metrics agent on this (one) node."""
    import ray

    node = next(n for n in ray.nodes() if n["Alive"])
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


@dataclass(frozen=True)
class Want:
    """The sum over the series of ``name`` whose labels include ``labels`` (any process)."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


def want(name: str, value: float, **labels: str) -> Want:
    return Want(name, value, tuple(labels.items()))


async def scrape(client: httpx.AsyncClient) -> dict[Want, float]:
    """Every sample of the scrape, summed per name and label set."""
    text = (await client.get(metrics_url())).text
    sums: dict[Want, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = Want(sample.name, 0, tuple(sorted(sample.labels.items())))
            sums[key] = sums.get(key, 0) + sample.value
    return sums


def observed(sums: dict[Want, float], w: Want) -> float:
    return sum(v for k, v in sums.items()
               if k.name == w.name and set(w.labels) <= set(k.labels))


async def until(*wanted: Want, timeout: float = 20) -> dict[Want, float]:
    """Scrape until every wanted sum is exactly its value (namespace mt implied)."""
    wanted = tuple(Want(w.name, w.value, (("namespace", NS), *w.labels)) for w in wanted)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            sums = await scrape(client)
            wrong = {w: observed(sums, w) for w in wanted if observed(sums, w) != w.value}
            if not wrong:
                return sums
            if time.monotonic() > deadline:
                raise AssertionError("\n".join(f"{w.name}{dict(w.labels)}: {got}, want {w.value}"
                                               for w, got in wrong.items()))
            await asyncio.sleep(0.5)


def token(svc: Service, user: str) -> dict[str, str]:
    return bearer(issue_token(svc.settings, user, f"Name {user}", "EU"))


async def update(c: httpx.AsyncClient, headers: dict[str, str], score: int, status: int) -> None:
    r = await c.post("/score/update", json={"score": score}, headers=headers)
    assert r.status_code == status, r.text


W, R = "ray_leaderboard_score_writes_applied_total", "ray_leaderboard_score_writes_refused_total"
STORED, LAG = "ray_leaderboard_writer_events_stored_total", "ray_leaderboard_postgres_lag_events_total"
BATCH, BACKLOG = "ray_leaderboard_writer_batch_size", "ray_leaderboard_stream_backlog"
PAUSED, FOLD = "ray_leaderboard_writer_paused", "ray_leaderboard_global_fold_lag_events"


async def test_counters_and_gauges_follow_writes_refusals_and_a_paused_writer(
    metered: Metered,
) -> None:
    app = metered.app
    async with app_client(app) as c:
        a, b = token(app, uid("ma")), token(app, uid("mb"))
        for score in (1, 2, 3):
            await update(c, a, score, 200)
        await update(c, a, 4, 429)  # user bucket: 3 per 10 minutes
        keyed = {**b, "Idempotency-Key": "k1"}
        await update(c, keyed, 5, 200)
        await update(c, keyed, 5, 200)  # the same answer again: a replay
        await drained(app)
        await until(want(STORED, 4), want(LAG, 4, le="+Inf"), want(BACKLOG, 0, shard="EU"))
        await app.pause_writers()
        try:
            for i in range(QUEUE_LIMIT):
                await update(c, token(app, uid("mq")), 10 + i, 200)
            await update(c, token(app, uid("mq")), 99, 429)  # queue_full: EU's backlog is 4
            await until(
                want(W, 8, shard="EU", board="default", result="changed"),
                want(W, 1, shard="EU", board="default", result="replay"),
                want(R, 1, shard="EU", board="default", reason="rate_limited", scope="user"),
                want(R, 1, shard="EU", board="default", reason="queue_full"),
                want(R, 2), want(BACKLOG, QUEUE_LIMIT, shard="EU"), want(BACKLOG, 0, shard="GLOBAL"),
                want(PAUSED, 1, writer="writer-0"), want(STORED, 4),
                # each applied EU write folded into GLOBAL once, by the shard (the fast path)
                want(FOLD, 8, le="+Inf"), want("ray_leaderboard_global_folded_events", 8,
                                                source="fast"))
        finally:
            await app.resume_writers()
        sums = await until(want(BACKLOG, 0, shard="EU"), want(PAUSED, 0), want(STORED, 8),
                           want(LAG, 8, le="+Inf"), want(FOLD, 8, le="+Inf"))
    # Ray's agent rebuilds a histogram's _sum from bucket midpoints (docs/metrics.md): counts only
    batches = observed(sums, want(BATCH + "_count", 0, namespace=NS))
    assert 2 <= batches <= 8  # before and after the pause; never more than one per event
    assert observed(sums, want(BATCH + "_bucket", 0, namespace=NS, le="+Inf")) == batches
    assert observed(sums, want("ray_leaderboard_writer_upsert_seconds_count", 0,
                               namespace=NS)) == batches


async def test_dead_letters_and_a_rebuild_after_redis_lost_its_data(metered: Metered) -> None:
    app, keys = metered.app, Keys(NS)
    eu = aioredis.Redis.from_url(metered.eu.url, decode_responses=True)
    try:
        await drained(app)
        batched = await scrape_value(BATCH + "_count")
        rebuilds = await scrape_value("ray_leaderboard_rebuilds_total", shard="EU",
                                      outcome="rebuilt")  # one at start: EU's instance was empty
        await eu.xadd(keys.stream("EU"), {"garbage": "1"})  # not an event: dead-lettered
        await until(want("ray_leaderboard_dead_lettered_total", 1, shard="EU"),
                    want("ray_leaderboard_dead_letters", 1, shard="EU"),
                    want(BATCH + "_count", batched + 1))
        users = len(await app_users(app))
        await eu.flushdb()  # EU's instance lost everything: its shard rebuilds it
        await until(want("ray_leaderboard_rebuilds_total", rebuilds + 1, shard="EU",
                         outcome="rebuilt"),
                    want("ray_leaderboard_rebuild_rows", users, shard="EU"),
                    want("ray_leaderboard_rebuild_running", 0, shard="EU"),
                    want("ray_leaderboard_warming", 0, shard="EU"),
                    want("ray_leaderboard_dead_letters", 0, shard="EU"))
    finally:
        await eu.aclose()


async def test_live_watchers_auth_refusals_and_serves_request_metrics(metered: Metered) -> None:
    app = metered.app
    here = {"X-Forwarded-For": "127.9.9.9"}
    async with app_client(app) as c:
        for status in (201, 429):  # one sign-up per address per 10 minutes
            body = {"user_id": uid("mr"), "name": "R", "region": "EU", "password": "correct horse"}
            assert (await c.post("/auth/register", json=body, headers=here)).status_code == status
        async with live(c, "default", region="GLOBAL") as stream:
            await stream.next()
            await until(want("ray_leaderboard_live_watchers", 1),
                        want("ray_leaderboard_live_views", 1),
                        want("ray_leaderboard_auth_rate_limited_total", 1))
        await until(want("ray_leaderboard_live_watchers", 0))
    async with httpx.AsyncClient(timeout=5) as client:
        sums = await scrape(client)
    for name in SERVE_METRICS:  # Serve's own request metrics, with HAProxy in front
        assert observed(sums, Want(name, 0, (("application", "metrics"),))) > 0, name


async def drained(app: Service) -> None:
    main = aioredis.Redis.from_url(app.settings.redis_url, decode_responses=True)
    try:
        await wait_drained(main, app.settings)
    finally:
        await main.aclose()


async def scrape_value(name: str, **labels: str) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        return observed(await scrape(client), want(name, 0, namespace=NS, **labels))


async def app_users(app: Service) -> list[str]:
    import asyncpg

    pg = await asyncpg.connect(app.settings.dsn())
    try:
        return [r["user_id"] for r in await pg.fetch(
            "SELECT user_id FROM leaderboard WHERE region = 'EU'")]
    finally:
        await pg.close()
