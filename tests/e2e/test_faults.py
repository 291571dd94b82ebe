"""Real faults under write load: nothing acknowledged is lost, Redis and Postgres end equal.

The "faults" app (board "fault") runs on the shared Serve, against a Redis and a Postgres of its
own that these tests kill and stop, with Redis behind a proxy that can lose a reply.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from leaderboard.keys import WRITERS_GROUP, Keys
from leaderboard.pipeline.db import ensure_database
from leaderboard.serve.auth import issue_token
from leaderboard.settings import Settings
from tests.e2e.conftest import Service, app_client, bearer, deploy
from tests.e2e.proxy import ReplyDroppingProxy
from tests.e2e.servers import OwnPostgres, OwnRedis

REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]


@dataclass
class Faults:
    """The fault app and the servers behind it."""

    app: Service
    redis: OwnRedis
    pg: OwnPostgres
    proxy: ReplyDroppingProxy
    keys: Keys = field(default_factory=lambda: Keys("fault"))


@pytest.fixture(scope="session")
def faults(service: Service) -> Iterator[Faults]:
    own_redis, own_pg = OwnRedis(), OwnPostgres()
    own_redis.start()
    own_pg.start()
    proxy = ReplyDroppingProxy(own_redis.port)
    s = service.settings.model_copy(update={
        "board": "fault", "redis_url": f"redis://127.0.0.1:{proxy.port}/0",
        "database_url": None, "pghost": "127.0.0.1", "pgport": own_pg.port, "pguser": "postgres",
        "pgdatabase": "leaderboard", "writer_pool_size": 2, "writer_claim_idle_ms": 2000,
        "writer_batch_size": 200, "rate_limits_enabled": False,
    })
    asyncio.run(ensure_database(s))
    try:
        yield Faults(deploy(s, "faults", "/faults"), own_redis, own_pg, proxy)
    finally:
        proxy.close()
        own_redis.stop()
        own_pg.destroy()


@pytest.fixture
async def fc(faults: Faults) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(faults.app) as c:
        yield c


@dataclass
class Load:
    """Writes with strictly increasing values per user; what was acknowledged, what was sent."""

    users: list[str]
    path: str = "/score/update"  # or a board's /boards/{b}/scores
    acked: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    acknowledged: int = 0

    async def run(self, client: httpx.AsyncClient, faults: Faults, seconds: float,
                  workers: int = 8) -> None:
        deadline = time.monotonic() + seconds

        async def worker(mine: list[str]) -> None:
            tokens = {u: bearer(issue_token(faults.app.settings, u, u, region(u))) for u in mine}
            i = 0
            while time.monotonic() < deadline:
                user = mine[i % len(mine)]
                i += 1
                value = self.sent.get(user, 0) + 1
                self.sent[user] = value
                try:
                    r = await client.post(self.path, json={"score": value},
                                          headers=tokens[user], timeout=10)
                except httpx.HTTPError:
                    self.refused += 1
                    continue
                if r.status_code == 200:
                    assert r.json()["score"] == value
                    self.acked[user] = value
                    self.acknowledged += 1
                else:
                    assert r.status_code == 503, r.text  # only "unavailable", never a 500
                    self.refused += 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(worker(self.users[w::workers]) for w in range(workers)))


def region(user: str) -> str:
    return REGIONS[sum(map(ord, user)) % len(REGIONS)]


async def drained(faults: Faults, timeout: float = 60) -> float:
    """Seconds until every shard stream is empty with nothing pending."""
    r = aioredis.Redis(port=faults.redis.port, decode_responses=True)
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            backlog = pending = 0
            for shard in REGIONS:
                name = faults.keys.stream(shard)
                backlog += await r.xlen(name)
                if await r.exists(name):
                    pending += (await r.xpending(name, WRITERS_GROUP))["pending"]
            if backlog == 0 and pending == 0:
                return time.monotonic() - start
            await asyncio.sleep(0.2)
    finally:
        await r.aclose()
    raise AssertionError(f"not drained after {timeout}s: backlog {backlog}, pending {pending}")


async def assert_nothing_lost(faults: Faults, load: Load) -> None:
    """Every user: Postgres == Redis (score and version) and no acknowledged write missing."""
    assert load.acknowledged > 0
    r = aioredis.Redis(port=faults.redis.port, decode_responses=True)
    pg = await asyncpg.connect(faults.app.settings.dsn())
    try:
        rows = {row["user_id"]: row for row in await pg.fetch(
            "SELECT user_id, score, version FROM leaderboard WHERE user_id = ANY($1)", load.users)}
        for user, acked in load.acked.items():
            h = await r.hgetall(faults.keys.user(user))
            score = int(h["score"])
            assert acked <= score <= load.sent[user], (user, acked, score)
            assert (rows[user]["score"], rows[user]["version"]) == (score, int(h["version"]))
    finally:
        await r.aclose()
        await pg.close()


def users(tag: str, n: int = 64) -> list[str]:
    return [f"{tag}-{i:03d}" for i in range(n)]


async def writer_pids(client: httpx.AsyncClient, faults: Faults) -> list[int]:
    admin = bearer(issue_token(faults.app.settings, "ops", "Ops", "GLOBAL", role="admin"))
    r = await client.get("/admin/writers", headers=admin)
    assert r.status_code == 200, r.text
    return [int(w["pid"]) for w in r.json()["writers"]]


async def test_writer_killed_mid_batch_loses_nothing(
    faults: Faults, fc: httpx.AsyncClient
) -> None:
    load = Load(users("wk"))
    victim = (await writer_pids(fc, faults))[0]

    async def kill_later() -> None:
        await asyncio.sleep(2)
        os.kill(victim, signal.SIGKILL)

    await asyncio.gather(load.run(fc, faults, 8), kill_later())
    await drained(faults)
    await assert_nothing_lost(faults, load)
    assert victim not in await writer_pids(fc, faults)  # restarted as a new process
    print(f"writer kill: {load.acknowledged} acknowledged writes checked")


async def test_postgres_outage_writes_admitted_then_drained(
    faults: Faults, fc: httpx.AsyncClient
) -> None:
    load = Load(users("pg"))
    seen: dict[str, object] = {}

    async def outage() -> None:
        await asyncio.sleep(2)
        await asyncio.to_thread(faults.pg.stop)
        await asyncio.sleep(3)
        health = await fc.get("/health")
        seen["health"] = (health.status_code, health.json())
        # 8 s down in all: the writers' back-off reaches its cap (MAX_BACKOFF_S, 2 s) after
        # ~3 s of failures, so they retry at the cap a few times before Postgres is back
        await asyncio.sleep(5)
        seen["backlog"] = sum((await fc.get("/health")).json()["backlog"].values())
        await asyncio.to_thread(faults.pg.start)
        seen["restarted"] = time.monotonic()

    try:
        await asyncio.gather(load.run(fc, faults, 11), outage())
    finally:
        if "backlog" not in seen:  # the outage did not finish: do not leave Postgres down
            faults.pg.start()
    code, body = seen["health"]  # type: ignore[misc]
    assert code == 503 and body["status"] == "degraded" and body["postgres"] == "unreachable"
    assert load.refused == 0  # writes kept being admitted while Postgres was down
    backlog = int(seen["backlog"])  # type: ignore[call-overload]
    assert backlog > 0  # acknowledged writes waited for Postgres: the outage was exercised
    await drained(faults)
    seconds = time.monotonic() - float(seen["restarted"])  # type: ignore[arg-type]
    await assert_nothing_lost(faults, load)
    print(f"postgres outage: {load.acknowledged} acknowledged writes checked; backlog {backlog} "
          f"drained {seconds:.1f}s after restart ({backlog / seconds:,.0f} events/s, "
          f"reconnect back-off included)")


async def test_redis_kill9_and_restart_loses_no_acknowledged_write(
    faults: Faults, fc: httpx.AsyncClient
) -> None:
    load = Load(users("rk"))

    async def crash() -> None:
        await asyncio.sleep(3)
        faults.redis.kill9()
        await asyncio.sleep(2)
        faults.redis.start()  # same directory: the AOF is replayed

    await asyncio.gather(load.run(fc, faults, 10), crash())
    assert load.refused > 0  # some writes met the dead Redis (and were not acknowledged)
    ok = await fc.post("/score/update", json={"score": 1},
                       headers=bearer(issue_token(faults.app.settings, "after", "A", "EU")))
    assert ok.status_code == 200  # reconnected by itself
    await drained(faults)
    await assert_nothing_lost(faults, load)
    print(f"redis kill -9: {load.acknowledged} acknowledged writes checked, "
          f"{load.refused} refused while down")


async def test_lost_reply_retried_with_idempotency_key_applies_once(
    faults: Faults, fc: httpx.AsyncClient
) -> None:
    user = f"idem-{time.monotonic_ns()}"
    headers = bearer(issue_token(faults.app.settings, user, "I", "EU"))
    first = await fc.post("/score/add", json={"delta": 5}, headers=headers)
    assert first.status_code == 200  # warm: the script is loaded on this connection's Redis
    key = {"Idempotency-Key": f"add-{user}", **headers}
    faults.proxy.arm(user.encode())
    lost = await fc.post("/score/add", json={"delta": 10}, headers=key)
    assert faults.proxy.dropped >= 1
    assert lost.status_code == 503  # the client cannot know the add happened
    retry = await fc.post("/score/add", json={"delta": 10}, headers=key)
    assert retry.status_code == 200 and retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json()["score"] == 15  # applied once, not 25
    again = await fc.post("/score/add", json={"delta": 10}, headers=key)
    assert again.json()["score"] == 15
    rank = await fc.get(f"/rank/{user}", params={"region": "EU"})
    assert rank.json()["score"] == 15


async def test_a_slow_cache_subscription_never_serves_a_stale_read(
    faults: Faults, fc: httpx.AsyncClient
) -> None:
    """What the gateway's cache hears arrives 50 ms late (the proxy holds it back): a read
    right after a write waits for the write's announcement instead of answering from the cache
    what it held before (a read served without that wait fails this)."""
    from tests.e2e.test_read_cache import cache_stats, own_writes_then_reads

    faults.proxy.subscriber_delay = 0.05
    try:
        assert await own_writes_then_reads(fc, faults.app.settings, rounds=10) == 6 * 10 * 3
        for _ in range(3):
            await fc.get("/top", params={"region": "ASIA", "limit": 3})
        assert (await cache_stats(fc))["hits"] >= 2  # the cache is in use all the same
    finally:
        faults.proxy.subscriber_delay = 0.0


async def test_flushall_during_writes_loses_nothing_and_rebuilds(
    faults: Faults, fc: httpx.AsyncClient
) -> None:
    load = Load(users("fl"))
    direct = aioredis.Redis(port=faults.redis.port, decode_responses=True)
    seen: dict[str, object] = {}

    async def flush() -> None:
        await asyncio.sleep(3)
        await direct.flushall()
        seen["health"] = (await fc.get("/health")).json()
        for _ in range(100):  # the guard notices within half a second and rebuilds
            if (await fc.get("/health")).json()["warming"] is False:
                seen["warm_again"] = True
                break
            await asyncio.sleep(0.1)

    try:
        await asyncio.gather(load.run(fc, faults, 8), flush())
        assert seen.get("warm_again") is True
        await drained(faults)
        await assert_nothing_lost(faults, load)
        top = (await fc.get("/top", params={"limit": 1000})).json()
        assert "warming" not in top and top["total"] >= len(load.acked)
    finally:
        await direct.aclose()
    print(f"FLUSHALL: {load.acknowledged} acknowledged writes checked; health right after the "
          f"flush: warming={seen['health']['warming']}")  # type: ignore[index]


async def test_flushall_rebuilds_a_boards_current_season_and_loses_nothing(
    faults: Faults, fc: httpx.AsyncClient
) -> None:
    """A board in its third hourly season: after FLUSHALL the registry and that season come
    back (from Postgres and the shards' unstored writes); every acknowledged write is there."""
    admin = bearer(issue_token(faults.app.settings, "ops", "Ops", "GLOBAL", role="admin"))
    start = datetime.now(UTC) - timedelta(hours=2, minutes=30)
    bid = f"fl-{uuid.uuid4().hex[:10]}"
    r = await fc.post("/boards", headers=admin, json={
        "id": bid, "operator": "best", "reset": 3600, "start": start.isoformat()})
    assert r.status_code == 201, r.text
    load = Load(users("fb", 32), path=f"/boards/{bid}/scores")
    direct = aioredis.Redis(port=faults.redis.port, decode_responses=True)
    pg = await asyncpg.connect(faults.app.settings.dsn())

    async def flush() -> None:
        await asyncio.sleep(2)
        await direct.flushall()
        for _ in range(100):
            if (await fc.get("/health")).json()["warming"] is False:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("still warming")

    try:
        await asyncio.gather(load.run(fc, faults, 6), flush())
        await drained(faults)
        keys = faults.keys
        generation = await direct.hget(keys.boards, bid)
        assert generation  # the registry came back
        p = keys.season(bid, generation, 3)
        rows = {row["user_id"]: (row["score"], row["version"]) for row in await pg.fetch(
            "SELECT user_id, score, version FROM leaderboard WHERE board = $1 AND season = 3",
            bid)}
        assert load.acknowledged > 0
        for user, acked in load.acked.items():
            h = await direct.hgetall(p.user(user))
            score = int(h["score"])
            assert acked <= score <= load.sent[user], (user, acked, score)
            assert rows[user] == (score, int(h["version"]))
        top = (await fc.get(f"/boards/{bid}/top", params={"limit": 1000})).json()
        assert top["season"] == 3 and "warming" not in top and top["total"] >= len(load.acked)
        assert [e["score"] for e in top["entries"]] == sorted(
            (e["score"] for e in top["entries"]), reverse=True)
        # once more without load: everything is in Postgres, so the rebuild alone brings it back
        await direct.flushall()
        for _ in range(100):
            if await direct.exists(keys.epoch) and not await direct.exists(keys.warming):
                break
            await asyncio.sleep(0.1)
        again = (await fc.get(f"/boards/{bid}/top", params={"limit": 1000})).json()
        assert "warming" not in again and again == top
        for user, (score, version) in rows.items():
            h = await direct.hgetall(p.user(user))
            assert (int(h["score"]), int(h["version"])) == (score, version)
    finally:
        await direct.aclose()
        await pg.close()


def test_proxy_closes_its_connections_without_leaving_tasks(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the proxy while clients are connected ends their tasks (no asyncio errors)."""
    import gc
    from urllib.parse import urlsplit

    import redis as sync_redis

    proxy = ReplyDroppingProxy(urlsplit(settings.redis_url).port or 6379)
    clients = [sync_redis.Redis(port=proxy.port) for _ in range(3)]
    assert all(c.ping() for c in clients)  # connections open through the proxy
    proxy.close()
    del proxy
    gc.collect()
    assert "Task was destroyed" not in caplog.text
    assert "Exception in callback" not in caplog.text
    for c in clients:
        c.close()
