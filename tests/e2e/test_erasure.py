"""DELETE /users/me: the right to erasure. With writes of the user queued behind paused writers,
the user is gone from every board and season (live and archived, Redis and Postgres) once the
writers resume, nothing queued brings them back, their tokens are refused, and archived ranks
close up behind them."""

from __future__ import annotations

import asyncpg
import httpx
import redis.asyncio as aioredis

from leaderboard.keys import Keys
from tests.e2e.conftest import Service, bearer, register, uid, until_sql
from tests.e2e.test_boards import admin, board_id

PASSWORD = "correct horse battery"


async def test_an_erased_user_is_gone_everywhere_and_stays_gone(
    client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    user, others = uid("er"), [uid("er") for _ in range(3)]
    token = await register(client, user, "EU", initialScore=100)
    tokens = [await register(client, o, "EU", initialScore=10 * i) for i, o in enumerate(others)]
    plain, daily = board_id(), board_id()
    for bid, reset in ((plain, None), (daily, 3)):
        r = await client.post("/boards", headers=admin(service),
                              json={"id": bid, "order": "asc", "reset": reset})
        assert r.status_code == 201, r.text
    seasons = set()
    for t, score in ((token, 5), *zip(tokens, (7, 3, 9), strict=True)):
        await client.post(f"/boards/{plain}/scores", json={"score": score}, headers=bearer(t))
        r = await client.post(f"/boards/{daily}/scores", json={"score": score},
                              headers=bearer(t))
        seasons.add(r.json()["season"])
    assert len(seasons) == 1, "all four in the board's first 3-second season"
    season = seasons.pop()
    await until_sql(pg, "SELECT archived_through >= $2 FROM boards WHERE id = $1", daily,
                    season, timeout=60)
    assert await pg.fetchval("SELECT global_rank FROM archive_entries WHERE board = $1 AND "
                             "user_id = $2", daily, user) == 2  # asc: 3, 5, 7, 9

    await service.pause_writers()  # these stay queued in the streams
    try:
        for score in (1, 2):
            r = await client.post(f"/boards/{plain}/scores", json={"score": score},
                                  headers=bearer(token))
            assert r.status_code == 200
        r = await client.post(f"/boards/{daily}/scores", json={"score": 1}, headers=bearer(token))
        queued_season = r.json()["season"]  # a later season: its archive must not wait on it
        r = await client.request("DELETE", "/users/me", json={"password": "wrong password"},
                                 headers=bearer(token))
        assert r.status_code == 401
        r = await client.request("DELETE", "/users/me", json={"password": PASSWORD},
                                 headers=bearer(token))
        assert r.status_code == 204, r.text
        # at once: not on any board, tokens refused, no login
        for path in (f"/rank/{user}", f"/boards/{plain}/rank/{user}"):
            assert (await client.get(path)).status_code == 404
        r = await client.get(f"/boards/{daily}/rank/{user}", params={"season": season})
        assert r.status_code == 404
        r = await client.get(f"/boards/{daily}/top", params={"season": season})
        assert [(e["rank"], e["user_id"]) for e in r.json()["entries"]] == [
            (1, others[1]), (2, others[0]), (3, others[2])]  # the ranks closed up
        assert r.json()["total"] == 3
        for path, body in (("/score/update", {"score": 1}), (f"/boards/{plain}/scores",
                                                               {"score": 1})):
            r = await client.post(path, json=body, headers=bearer(token))
            assert r.status_code == 401, r.text
        r = await client.patch("/users/me", json={"name": "Back"}, headers=bearer(token))
        assert r.status_code == 401
        r = await client.post("/auth/login", json={"user_id": user, "password": PASSWORD})
        assert r.status_code == 401
        r = await client.post("/auth/register", json={"user_id": user, "name": "X",
                                                      "region": "EU", "password": PASSWORD})
        assert r.status_code == 409  # not until the erasure is complete
    finally:
        await service.resume_writers()
    await until_sql(pg, "SELECT purged_at IS NOT NULL FROM erased_users WHERE user_id = $1",
                    user, timeout=60)
    # the erased user's unstored write does not hold its season back
    await until_sql(pg, "SELECT archived_through >= $2 FROM boards WHERE id = $1", daily,
                    queued_season, timeout=60)

    for table in ("leaderboard", "archive_entries", "credentials"):
        assert not await pg.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user)
    assert await pg.fetchval("SELECT entries FROM season_archive WHERE board = $1 AND "
                             "season = $2", daily, season) == 3
    keys = [k async for k in redis.scan_iter(match=f"*{user}*", count=1000)]
    assert keys == [Keys(service.settings.board).profile(user)]  # the tombstone refusing tokens
    for path in (f"/rank/{user}", f"/boards/{plain}/rank/{user}"):
        assert (await client.get(path)).status_code == 404

    # the id can be signed up again: a new user with nothing of the old one
    fresh = await register(client, user, "NA")
    r = await client.post(f"/boards/{plain}/scores", json={"score": 4}, headers=bearer(fresh))
    assert r.status_code == 200 and r.json()["region"] == "NA"
    assert (await client.get(f"/rank/{user}")).status_code == 404
