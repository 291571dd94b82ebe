"""Entry metadata: stored with the entry, answered in every entry ({} when none), kept through
batch writes, a best board's non-improving writes, a rebuild from Postgres after Redis lost its
data, and a season's archive; 512 bytes encoded compactly is the limit."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from leaderboard.serve.auth import issue_token
from tests.e2e.conftest import (
    Service,
    bearer,
    register,
    uid,
    until_sql,
    wait_drained,
    wait_stored,
    wait_warm,
)
from tests.e2e.test_boards import admin, board_id, create

CAR = {"car": "Mk II", "colour": "rouge é", "laps": [61.2, 60.9], "ghost": None}


def sized(n: int) -> dict[str, str]:
    """An object whose compact UTF-8 encoding is exactly n bytes (é is two bytes)."""
    return {"k": "é" + "x" * (n - 10)}


async def every_read(client: httpx.AsyncClient, user: str, board: str = "",
                     **params: Any) -> list[dict[str, Any]]:
    """The user's entry as top, rank, around and friends' ranks answer it, on GLOBAL and EU."""
    base = f"/boards/{board}" if board else ""
    found = []
    for region in ("GLOBAL", "EU"):
        q = {"region": region, **params}
        top = (await client.get(f"{base}/top", params={**q, "limit": 1000})).json()
        found += [e for e in top["entries"] if e["user_id"] == user]
        found.append((await client.get(f"{base}/rank/{user}", params=q)).json())
        found.append((await client.get(f"{base}/around/{user}", params=q)).json()["self"])
        friends = (await client.get(f"{base}/ranks", params={**q, "user_ids": user})).json()
        found += friends["entries"]
    assert len(found) == 8, found
    return found


def metadata_of(entries: list[dict[str, Any]]) -> list[Any]:
    return [e["metadata"] for e in entries]


async def test_metadata_round_trip_through_every_read_and_write(
    client: httpx.AsyncClient, service: Service
) -> None:
    user, plain = uid("md"), uid("md")
    token = await register(client, user, "EU")
    await register(client, plain, "EU", initialScore=3)
    r = await client.post("/score/update", json={"score": 10, "metadata": CAR},
                          headers=bearer(token))
    assert r.status_code == 200 and r.json()["metadata"] == CAR, r.text
    assert metadata_of(await every_read(client, user)) == [CAR] * 8
    assert metadata_of(await every_read(client, plain)) == [{}] * 8  # none: {}

    # an applied write sets the entry's metadata to what it carries: none clears it
    r = await client.post("/score/add", json={"delta": 1}, headers=bearer(token))
    assert r.json()["metadata"] == {} and r.json()["score"] == 11
    assert metadata_of(await every_read(client, user)) == [{}] * 8

    # a game server's batch: per item
    server = bearer(issue_token(service.settings, "game", "Game", "GLOBAL", role="server"))
    r = await client.post("/scores/batch", headers=server, json={"items": [
        {"user_id": user, "score": 20, "metadata": {"replay": "r-1"}},
        {"user_id": plain, "delta": 1}]})
    assert r.status_code == 200, r.text
    assert [i["entry"]["metadata"] for i in r.json()["results"]] == [{"replay": "r-1"}, {}]
    assert metadata_of(await every_read(client, user)) == [{"replay": "r-1"}] * 8


async def test_a_best_board_keeps_the_best_submissions_metadata(
    client: httpx.AsyncClient, service: Service
) -> None:
    user = uid("md")
    token = await register(client, user, "EU")
    board = board_id()
    r = await client.post("/boards", headers=admin(service),
                          json={"id": board, "order": "asc", "operator": "best"})
    assert r.status_code == 201, r.text
    write = f"/boards/{board}/scores"
    r = await client.post(write, json={"score": 50, "metadata": {"run": 1}}, headers=bearer(token))
    assert r.json()["improved"] is True and r.json()["metadata"] == {"run": 1}
    r = await client.post(write, json={"score": 70, "metadata": {"run": 2}}, headers=bearer(token))
    assert r.json()["improved"] is False and r.json()["metadata"] == {"run": 1}  # slower: kept
    r = await client.post(write, json={"score": 40}, headers=bearer(token))
    assert r.json()["improved"] is True and r.json()["metadata"] == {}
    r = await client.post(write, json={"score": 30, "metadata": {"run": 4}},
                          headers=bearer(token))
    assert metadata_of(await every_read(client, user, board)) == [{"run": 4}] * 8


async def test_the_limit_is_512_bytes_encoded_compactly(
    client: httpx.AsyncClient, service: Service
) -> None:
    user = uid("md")
    token = await register(client, user, "EU")
    r = await client.post("/score/update", json={"score": 1, "metadata": sized(512)},
                          headers=bearer(token))
    assert r.status_code == 200 and r.json()["metadata"] == sized(512)
    refusals = [{"score": 2, "metadata": sized(513)}, {"score": 2, "metadata": [1]},
                {"score": 2, "metadata": "car"}, {"score": 2, "metadata": 7}]
    for body in refusals:
        r = await client.post("/score/update", json=body, headers=bearer(token))
        assert r.status_code == 422 and r.json()["error"] == "metadata_invalid", (body, r.text)
    server = bearer(issue_token(service.settings, "game", "Game", "GLOBAL", role="server"))
    r = await client.post("/scores/batch", headers=server,
                          json={"items": [{"user_id": user, "score": 3, "metadata": sized(513)}]})
    assert r.status_code == 422 and r.json()["error"] == "metadata_invalid"
    r = await client.get(f"/rank/{user}")
    assert r.json()["score"] == 1 and r.json()["metadata"] == sized(512)  # nothing refused landed


async def test_metadata_survives_a_rebuild_from_postgres_and_a_season_archive(
    client: httpx.AsyncClient, service: Service, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    user = uid("md")
    token = await register(client, user, "EU")
    seasonal, plain = board_id(), board_id()
    for bid, reset in ((seasonal, 1), (plain, None)):
        r = await create(client, service, id=bid, order="desc", operator="set", reset=reset)
        assert r.status_code == 201, r.text
    r = await client.post(f"/boards/{seasonal}/scores", json={"score": 9, "metadata": CAR},
                          headers=bearer(token))
    season = r.json()["season"]
    await client.post(f"/boards/{plain}/scores", json={"score": 8, "metadata": {"p": 1}},
                      headers=bearer(token))
    await client.post("/score/update", json={"score": 7, "metadata": {"d": "ü"}},
                      headers=bearer(token))

    # Postgres keeps the text exactly as encoded compactly (json, not jsonb)
    await wait_drained(redis, service.settings)
    await until_sql(pg, "SELECT metadata::text = $2 FROM leaderboard WHERE user_id = $1 "
                    "AND board = 'default'", user, '{"d":"ü"}')
    # the ended season's archive carries it
    await until_sql(pg, "SELECT archived_through >= $2 FROM boards WHERE id = $1",
                    seasonal, season)
    stored = await pg.fetchval("SELECT metadata::text FROM archive_entries WHERE board = $1 "
                               "AND user_id = $2", seasonal, user)
    assert json.loads(stored) == CAR
    assert metadata_of(await every_read(client, user, seasonal, season=season)) == [CAR] * 8

    # Redis loses everything: the rebuild from Postgres brings the metadata back
    await wait_stored(service)
    await redis.flushdb()
    await wait_warm(service)
    assert metadata_of(await every_read(client, user)) == [{"d": "ü"}] * 8
    assert metadata_of(await every_read(client, user, plain)) == [{"p": 1}] * 8
