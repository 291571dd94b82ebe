"""PATCH /users/me: one name per user, shown on every board, region, season and archive at once,
kept by later writes even through a token issued before the rename, and in Postgres."""

from __future__ import annotations

import asyncpg
import httpx

from leaderboard.serve.auth import issue_token
from tests.e2e.conftest import Service, bearer, register, uid, until_sql, wait_drained
from tests.e2e.test_boards import board_id, create


async def test_a_rename_shows_everywhere_at_once_and_stays(
    client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool, redis: object
) -> None:
    user, other = uid("rn"), uid("rn")
    old = await register(client, user, "EU", initialScore=50)
    await register(client, other, "EU", initialScore=60)
    season_board, plain = board_id(), board_id()
    for bid, reset in ((season_board, 1), (plain, None)):
        r = await create(client, service, id=bid, order="asc", operator="best", reset=reset)
        assert r.status_code == 201, r.text
        r = await client.post(f"/boards/{bid}/scores", json={"score": 7}, headers=bearer(old))
        assert r.status_code == 200, r.text
    first = (await client.post(f"/boards/{season_board}/scores", json={"score": 3},
                               headers=bearer(old))).json()["season"]
    await until_sql(pg, "SELECT archived_through >= $2 FROM boards WHERE id = $1",
                   season_board, first)  # that season is archived with the old name

    r = await client.patch("/users/me", json={"name": "New Name"}, headers=bearer(old))
    assert r.status_code == 200, r.text
    assert r.json()["user"] == {"user_id": user, "name": "New Name", "region": "EU"}
    fresh = r.json()["token"]

    names = []
    for region in ("GLOBAL", "EU"):
        names.append((await client.get(f"/rank/{user}", params={"region": region})).json())
        top = (await client.get("/top", params={"region": region, "limit": 1000})).json()
        names += [e for e in top["entries"] if e["user_id"] == user]
        near = (await client.get(f"/around/{other}", params={"region": region})).json()
        names += [e for e in near["around"] if e["user_id"] == user]
        names.append((await client.get(f"/boards/{plain}/rank/{user}",
                                       params={"region": region})).json())
        friends = (await client.get("/ranks", params={"user_ids": f"{user},{other}",
                                                      "region": region})).json()
        names += [e for e in friends["entries"] if e["user_id"] == user]
        names.append((await client.get(f"/boards/{season_board}/rank/{user}",
                                       params={"region": region, "season": first})).json())
    assert len(names) == 12 and {e["name"] for e in names} == {"New Name"}, names

    # a token from before the rename writes the new name; so does the new token
    r = await client.post("/score/update", json={"score": 55}, headers=bearer(old))
    assert r.json()["name"] == "New Name"
    r = await client.post(f"/boards/{plain}/scores", json={"score": 5}, headers=bearer(fresh))
    assert r.json()["name"] == "New Name"
    r = await client.post("/auth/login", json={"user_id": user,
                                               "password": "correct horse battery"})
    assert r.status_code == 200
    await wait_drained(redis, service.settings)  # type: ignore[arg-type]
    await until_sql(pg, "SELECT bool_and(name = 'New Name') FROM leaderboard WHERE user_id = $1",
                   user)
    await until_sql(pg, "SELECT bool_and(name = 'New Name') FROM archive_entries "
                   "WHERE user_id = $1", user)


async def test_rename_refusals(client: httpx.AsyncClient, service: Service) -> None:
    user = uid("rn")
    token = await register(client, user, "EU")
    for bad in ({}, {"name": ""}, {"name": "x" * 201}, {"name": 5}):
        r = await client.patch("/users/me", json=bad, headers=bearer(token))
        assert r.status_code == 422 and r.json()["error"] == "validation_error", bad
    assert (await client.patch("/users/me", json={"name": "A"})).status_code == 401
    server = issue_token(service.settings, "game", "Game", "GLOBAL", role="server")
    r = await client.patch("/users/me", json={"name": "A"}, headers=bearer(server))
    assert r.status_code == 403
    ghost = issue_token(service.settings, uid("ghost"), "G", "EU")
    r = await client.patch("/users/me", json={"name": "A"}, headers=bearer(ghost))
    assert r.status_code == 404
