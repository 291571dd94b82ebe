"""Regions on a second Redis instance: boards where they belong, GLOBAL folded in, splits.

A second redis-server (no persistence) runs on a free port for this module and is stopped after.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.fold import FoldLag
from leaderboard.keys import Keys, member_for
from leaderboard.pipeline.writer import StreamWriter
from leaderboard.reconcile import reconcile_all
from leaderboard.recovery import BoardGuard
from leaderboard.redis_client import REDIS_DOWN
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import GLOBAL, Settings
from leaderboard.shards import Topology
from tests.e2e.servers import OwnRedis

REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]


@pytest.fixture
def sharded(settings: Settings, second: OwnRedis) -> Settings:
    """EU (split over 3 shards) and ASIA on the second instance; GLOBAL and NA on REDIS_URL."""
    return settings.model_copy(update={"redis_shards": f"EU={second.url},ASIA={second.url}",
                                       "region_splits": "EU=3"})


@pytest.fixture
async def other(redis: aioredis.Redis, second: OwnRedis, settings: Settings
                ) -> AsyncIterator[aioredis.Redis]:
    """The second instance, emptied, with its board marked complete (like ``redis``)."""
    client = aioredis.Redis.from_url(second.url, decode_responses=True)
    await client.flushdb()
    await client.set(Keys(settings.board).epoch, "test")
    yield client
    await client.aclose()


class Cluster:
    """Every shard of the sharded settings, in process, and a model of what was applied."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topology = Topology.of(settings)
        self.shards = {s: RegionShard(settings, s) for s in self.topology.all_shards()}
        self.model: dict[str, int] = {}
        self.used: set[str] = set()

    async def write(self, user: str, region: str, mode: str, value: int) -> int:
        shard = self.topology.shard_for(region, user)
        self.used.add(shard)
        r = await self.shards[shard].write(WriteCommand(user, f"N {user}", region, mode, value))  # type: ignore[arg-type]
        assert r.status == "ok", r
        self.model[user] = value if mode == "set" else self.model.get(user, 0) + value
        return r.rank

    async def random_writes(self, n: int, users: int, seed: int = 3) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            i = rng.randrange(users)
            await self.write(f"u{i:03d}", REGIONS[i % 4], rng.choice(["set", "add"]),
                             rng.randrange(8))

    def writers(self, redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool
                ) -> list[StreamWriter]:
        from leaderboard.fold import GlobalFold

        keys, t = Keys(self.settings.board), self.topology
        return [
            StreamWriter(redis, pg, keys, t.shards_on(t.global_url), "w-a", batch_size=100,
                         block_ms=10, claim_idle_ms=60_000),
            StreamWriter(other, pg, keys, t.shards_on(t.urls()[1]), "w-b", batch_size=100,
                         block_ms=10, claim_idle_ms=60_000, fold=GlobalFold(redis, keys)),
        ]


async def drain(writers: list[StreamWriter]) -> None:
    for w in writers:
        await w.start()
        while await w.step():
            pass


async def expected_order(c: Cluster, redis: aioredis.Redis, other: aioredis.Redis,
                         region: str) -> list[tuple[str, int]]:
    """The model's board: score descending, then whoever reached it first (from their hash)."""
    keys = Keys(c.settings.board)
    users = [u for u in c.model if region == GLOBAL or REGIONS[int(u[1:]) % 4] == region]
    members = {}
    for u in users:
        home = other if c.topology.is_remote(REGIONS[int(u[1:]) % 4]) else redis
        members[u] = member_for(u, int(await home.hget(keys.user(u), "reached")))
    ordered = sorted(users, key=lambda u: (c.model[u], members[u]), reverse=True)
    return [(u, c.model[u]) for u in ordered]


async def board(ranker: Ranker, region: str) -> list[tuple[str, int]]:
    top = await ranker.top(region, 1000)
    return [(e["user_id"], e["score"]) for e in top["entries"]]


async def test_boards_live_on_their_instance_and_global_equals_the_model(
    sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    c = Cluster(sharded)
    await c.random_writes(600, users=80)
    keys = Keys(sharded.board)
    assert await other.exists(keys.board("EU")) and await other.exists(keys.board("ASIA"))
    assert not await redis.exists(keys.board("EU")) and not await redis.exists(keys.board("ASIA"))
    assert not await other.exists(keys.board(GLOBAL)) and not await other.exists(keys.board("NA"))
    assert {"EU", "EU.1", "EU.2"} <= c.used  # the split region used every one of its shards
    for shard in ("EU", "EU.1", "EU.2"):
        assert await other.xlen(keys.stream(shard)) > 0
    ranker = Ranker(sharded)
    for region in REGIONS:
        assert await board(ranker, region) == await expected_order(c, redis, other, region)
    # a write's answer is its GLOBAL rank, also for users on the second instance
    order = [u for u, _ in await expected_order(c, redis, other, GLOBAL)]
    rank = await c.write("u002", "EU", "add", 0)  # unchanged score keeps its place
    assert rank == order.index("u002") + 1
    assert (await ranker.rank(GLOBAL, "u002") or {})["rank"] == rank
    # the writers store every event and leave every stream empty
    await drain(c.writers(redis, other, pg))
    rows = {r["user_id"]: (r["score"], r["version"])
            for r in await pg.fetch("SELECT user_id, score, version FROM leaderboard")}
    for user, score in c.model.items():
        home = other if c.topology.is_remote(REGIONS[int(user[1:]) % 4]) else redis
        assert rows[user] == (score, int(await home.hget(keys.user(user), "version")))
    for shard in c.topology.all_shards():
        home = other if shard in c.topology.remote_shards() else redis
        assert await home.xlen(keys.stream(shard)) == 0
    lag = FoldLag.from_hash(await redis.hgetall(keys.fold_stats))
    assert lag.applied_fast > 0 and lag.applied_net == 0  # the fast path folded everything
    report = await reconcile_all(c.topology, pg, keys, dry_run=True)
    assert report.drift == 0 and report.users_in_redis == report.users_in_postgres == 80


async def test_writers_fold_what_the_fast_path_missed(
    sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    c = Cluster(sharded)
    await c.random_writes(200, users=40)
    keys = Keys(sharded.board)
    # GLOBAL's instance unreachable for the shards' own fold: applied, rank unknown for now
    for shard in c.topology.remote_shards():
        async def down(*_: object) -> list[int]:
            raise REDIS_DOWN[0]("GLOBAL instance down")
        monkeypatch.setattr(c.shards[shard]._fold, "apply", down)
    result = await c.shards["ASIA"].write(WriteCommand("u001", "N u001", "ASIA", "set", 99))
    assert result.status == "ok" and result.global_pending and result.rank == 0
    c.model["u001"] = 99
    # and GLOBAL lost an entry it had folded in earlier (say a bad manual edit)
    eu_user = next(u for u in c.model if REGIONS[int(u[1:]) % 4] == "EU")
    await redis.zrem(keys.board(GLOBAL), await redis.hget(keys.user(eu_user), "member"))
    await redis.hset(keys.user(eu_user), "version", 1)
    ranker = Ranker(sharded)
    assert await board(ranker, GLOBAL) != await expected_order(c, redis, other, GLOBAL)
    await drain(c.writers(redis, other, pg))
    assert await board(ranker, GLOBAL) == await expected_order(c, redis, other, GLOBAL)
    lag = FoldLag.from_hash(await redis.hgetall(keys.fold_stats))
    assert lag.applied_net >= 2 and sum(lag.counts.values()) == lag.applied_fast + lag.applied_net


async def test_each_instance_rebuilds_its_own_boards_from_postgres(
    sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    c = Cluster(sharded)
    await c.random_writes(300, users=60)
    await drain(c.writers(redis, other, pg))
    ranker = Ranker(sharded)
    before = {r: await board(ranker, r) for r in REGIONS}
    keys, t = Keys(sharded.board), c.topology
    await redis.flushdb()  # GLOBAL's instance loses its data: GLOBAL and NA rebuilt there
    await other.flushdb()  # and so does the second: EU and ASIA rebuilt there
    for url, client in ((t.global_url, redis), (t.urls()[1], other)):
        shard = t.shards_on(url)[0]
        guard = BoardGuard(client, keys, shard, c.shards[shard].unstored,
                           lambda region, u=url: t.boards_on(u, region))  # type: ignore[misc]
        assert await guard.check(pg) == "rebuilt"
    assert {r: await board(ranker, r) for r in REGIONS} == before
    assert not await redis.exists(keys.board("EU")) and not await other.exists(keys.board(GLOBAL))
    assert (await reconcile_all(t, pg, keys, dry_run=True)).drift == 0


async def test_check_queue_reports_every_instance_and_global_staleness(
    sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis, second: OwnRedis
) -> None:
    c = Cluster(sharded)
    await c.write("cq-eu", "EU", "set", 7)  # EU lives on the second instance, folded into GLOBAL
    await c.write("cq-na", "NA", "set", 3)
    eu_shard = c.topology.shard_for("EU", "cq-eu")
    env = {**os.environ, "REDIS_SHARDS": sharded.redis_shards, "REGION_SPLITS": sharded.region_splits}
    script = Path(__file__).resolve().parents[2] / "scripts" / "check_queue.py"
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=30, check=True).stdout
    sections = out.split("Redis ")
    mine = next(s for s in sections if s.startswith(f"127.0.0.1:{second.port}/"))
    assert f"{eu_shard}: stream {Keys(sharded.board).stream(eu_shard)}  backlog=1" in mine, out
    assert "NA:" not in mine and "ASIA:" in mine, out  # NA lives on REDIS_URL's instance
    assert "GLOBAL fold lag:" in out and "folded by shards=1" in out, out
    assert f"GLOBAL staleness bound for {eu_shard}" in out, out
