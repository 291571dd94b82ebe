"""Two Redis instances behind the real HTTP service: EU (split over 3 shards) and ASIA on a
second redis-server, GLOBAL and NA on REDIS_URL. After concurrent random writes stop, every board
(GLOBAL included) equals a model of all users and Postgres holds every acknowledged write.

The "shards" app (board "shd", database of its own) runs on the shared Serve.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from leaderboard.keys import Keys, member_for
from leaderboard.serve.auth import issue_token
from leaderboard.settings import GLOBAL
from tests.e2e.conftest import SHARDED_BOARD as BOARD
from tests.e2e.conftest import SHARDED_REGIONS as REGIONS
from tests.e2e.conftest import (
    Sharded,
    app_client,
    bearer,
    wait_drained,
    wait_stored,
)


@pytest.fixture
async def sc(sharded: Sharded) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(sharded.app) as c:
        yield c


def region_of(user: str) -> str:
    return REGIONS[int(user.split("-")[1]) % len(REGIONS)]


async def test_two_instances_concurrent_writes_match_the_model(
    sharded: Sharded, sc: httpx.AsyncClient
) -> None:
    s, t = sharded.app.settings, sharded.topology
    keys = Keys(BOARD)
    users = [f"s-{i:03d}" for i in range(60)]
    model: dict[str, int] = {}
    rng = random.Random(11)
    plans = {u: [(rng.choice(["set", "add"]), rng.randrange(12)) for _ in range(12)] for u in users}

    async def play(user: str) -> None:  # one user's writes in order; users run concurrently
        headers = bearer(issue_token(s, user, f"N {user}", region_of(user)))
        for mode, value in plans[user]:
            path, body = (("/score/update", {"score": value}) if mode == "set"
                          else ("/score/add", {"delta": value}))
            r = await sc.post(path, json=body, headers=headers)
            assert r.status_code == 200, r.text
            model[user] = value if mode == "set" else model.get(user, 0) + value
            assert r.json()["score"] == model[user] and r.json()["rank"] >= 1

    await asyncio.gather(*(play(u) for u in users))

    main = aioredis.Redis.from_url(s.redis_url, decode_responses=True)
    other = aioredis.Redis.from_url(sharded.second.url, decode_responses=True)
    try:
        await wait_drained(main, s)
        await wait_stored(sharded.app)
        # region boards on their instances only
        for region in ("EU", "ASIA"):
            assert await other.exists(keys.board(region)) and not await main.exists(keys.board(region))
        assert await main.exists(keys.board("NA")) and not await other.exists(keys.board("NA"))
        assert not await other.exists(keys.board(GLOBAL))
        # EU's users went through all three of its shards' streams
        added = {sh: int((await other.xinfo_stream(keys.stream(sh)))["entries-added"])
                 for sh in t.shards["EU"]}
        assert all(n > 0 for n in added.values()), added

        home = {u: other if t.is_remote(region_of(u)) else main for u in users}
        reached = {u: int(await home[u].hget(keys.user(u), "reached")) for u in users}
        version = {u: int(await home[u].hget(keys.user(u), "version")) for u in users}
    finally:
        await main.aclose()
        await other.aclose()

    def expected(region: str) -> list[tuple[str, int]]:
        mine = [u for u in users if region == GLOBAL or region_of(u) == region]
        mine.sort(key=lambda u: (model[u], member_for(u, reached[u])), reverse=True)
        return [(u, model[u]) for u in mine]

    for region in REGIONS:
        top = (await sc.get("/top", params={"region": region, "limit": 1000})).json()
        assert [(e["user_id"], e["score"]) for e in top["entries"]] == expected(region), region
        assert top["total"] == len(expected(region))
    order = [u for u, _ in expected(GLOBAL)]
    for user in users:
        r = (await sc.get(f"/rank/{user}")).json()
        assert r["rank"] == order.index(user) + 1 and r["score"] == model[user]
    for user in users[::7]:
        body = (await sc.get(f"/around/{user}", params={"range": 3})).json()
        i = order.index(user)
        assert [e["user_id"] for e in body["around"]] == order[max(0, i - 3):i] + order[i + 1:i + 4]
        assert body["self"]["rank"] == i + 1

    pg = await asyncpg.connect(s.dsn())
    try:
        rows = {r["user_id"]: (r["score"], r["version"])
                for r in await pg.fetch("SELECT user_id, score, version FROM leaderboard "
                                        "WHERE board = 'default'")}
    finally:
        await pg.close()
    assert rows == {u: (model[u], version[u]) for u in users}

    health = (await sc.get("/health")).json()
    assert health["status"] == "ok" and set(health["redis_instances"].values()) == {"ok"}
    assert set(health["backlog"]) == set(t.all_shards())
    assert health["global"]["folded_fast"] > 0 and health["global"]["oldest_unconfirmed_ms"] == 0


async def test_an_asc_best_board_on_two_instances_matches_the_model(
    sharded: Sharded, sc: httpx.AsyncClient
) -> None:
    """A board of its own (lowest first, keep the best) across both instances: every write
    answers its GLOBAL rank (folded by the fast path), and every board equals the model."""
    s, t = sharded.app.settings, sharded.topology
    keys = Keys(BOARD)
    bid = f"asc-{random.randrange(10**9)}"  # the app's database outlives a run
    admin = bearer(issue_token(s, "ops", "Ops", GLOBAL, role="admin"))
    r = await sc.post("/boards", json={"id": bid, "order": "asc", "operator": "best"},
                      headers=admin)
    assert r.status_code == 201, r.text
    users = [f"a-{i:03d}" for i in range(40)]
    rng = random.Random(12)
    plans = {u: [rng.randrange(-50, 50) for _ in range(8)] for u in users}
    model: dict[str, int] = {}

    async def play(user: str) -> None:
        headers = bearer(issue_token(s, user, f"N {user}", region_of(user)))
        for value in plans[user]:
            r = await sc.post(f"/boards/{bid}/scores", json={"score": value}, headers=headers)
            assert r.status_code == 200, r.text
            improved = user not in model or value < model[user]
            model[user] = value if improved else model[user]
            body = r.json()
            assert (body["score"], body["improved"], body["season"]) == (model[user], improved, 1)
            assert body["rank"] >= 1, body  # a GLOBAL rank, for EU and ASIA users too

    await asyncio.gather(*(play(u) for u in users))
    main = aioredis.Redis.from_url(s.redis_url, decode_responses=True)
    other = aioredis.Redis.from_url(sharded.second.url, decode_responses=True)
    try:
        await wait_drained(main, s)
        await wait_stored(sharded.app)
        generation = await main.hget(keys.boards, bid)
        p = keys.season(bid, generation, 1)
        home = {u: other if t.is_remote(region_of(u)) else main for u in users}
        reached = {u: int(await home[u].hget(p.user(u), "reached")) for u in users}
        assert await main.smembers(keys.seasons(bid, generation)) == {"1"}
        assert await other.exists(p.board("EU")) and not await other.exists(p.board(GLOBAL))
    finally:
        await main.aclose()
        await other.aclose()

    def expected(region: str) -> list[tuple[str, int]]:
        mine = [u for u in users if region == GLOBAL or region_of(u) == region]
        mine.sort(key=lambda u: (-model[u], member_for(u, reached[u])), reverse=True)
        return [(u, model[u]) for u in mine]

    for region in REGIONS:
        top = (await sc.get(f"/boards/{bid}/top", params={"region": region, "limit": 1000})).json()
        assert [(e["user_id"], e["score"]) for e in top["entries"]] == expected(region), region
    order = [u for u, _ in expected(GLOBAL)]
    for user in users[::5]:
        got = (await sc.get(f"/boards/{bid}/rank/{user}", params={"region": GLOBAL})).json()
        assert got["rank"] == order.index(user) + 1 and got["score"] == model[user]
    pg = await asyncpg.connect(s.dsn())
    try:
        rows = {r["user_id"]: r["score"] for r in await pg.fetch(
            "SELECT user_id, score FROM leaderboard WHERE board = $1 AND season = 1", bid)}
    finally:
        await pg.close()
    assert rows == model
    assert (await sc.delete(f"/boards/{bid}", headers=admin)).status_code == 204
