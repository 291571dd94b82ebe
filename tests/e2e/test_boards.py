"""Boards over HTTP: create, list, describe and delete; seen by every gateway replica at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from leaderboard.keys import Keys
from leaderboard.serve.auth import issue_token
from tests.e2e.conftest import Service, bearer, register, uid


def admin(service: Service) -> dict[str, str]:
    return bearer(issue_token(service.settings, "ops", "Ops", "GLOBAL", role="admin"))


def board_id() -> str:
    return f"b{uid('')[1:].replace('-', '')}"[:30]


async def create(client: httpx.AsyncClient, service: Service, **body: Any) -> httpx.Response:
    return await client.post("/boards", json=body, headers=admin(service))


async def test_create_then_read_back(client: httpx.AsyncClient, service: Service) -> None:
    bid = board_id()
    r = await create(client, service, id=bid, title="Speedrun", order="asc", operator="best",
                     reset=3600, start="2026-01-01T00:00:00Z")
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in ("id", "title", "order", "operator", "reset", "start")} == {
        "id": bid, "title": "Speedrun", "order": "asc", "operator": "best", "reset": 3600,
        "start": "2026-01-01T00:00:00Z"}
    season = body["season"]
    assert season["number"] >= 1 and body["entries"] == 0
    assert season["ends_at"] > season["started_at"]
    r = await client.get(f"/boards/{bid}")
    assert r.status_code == 200 and r.json()["id"] == bid
    listed = (await client.get("/boards")).json()["boards"]
    assert {"default", bid} <= {b["id"] for b in listed}


async def test_defaults_and_the_default_board(client: httpx.AsyncClient,
                                              service: Service) -> None:
    bid = board_id()
    before = int(time.time())
    body = (await create(client, service, id=bid)).json()
    assert (body["title"], body["order"], body["operator"], body["reset"]) == (
        bid, "desc", "set", None)
    assert body["season"]["number"] == 1 and body["season"]["ends_at"] is None
    assert body["start"] >= time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before - 60))
    default = (await client.get("/boards/default")).json()
    assert (default["order"], default["operator"], default["reset"]) == ("desc", "set", None)


async def test_create_refusals(client: httpx.AsyncClient, service: Service) -> None:
    bid = board_id()
    assert (await create(client, service, id=bid)).status_code == 201
    r = await create(client, service, id=bid)
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    for bad in ({"id": "Upper"}, {"id": "-x"}, {"id": "a" * 65}, {"id": board_id(), "reset": 0},
                {"id": board_id(), "reset": "61 * * * *"}, {"id": board_id(), "operator": "max"},
                {"id": board_id(), "order": "up"}, {"id": board_id(), "start": "yesterday"}):
        r = await create(client, service, **bad)
        assert r.status_code == 422 and r.json()["error"] == "validation_error", (bad, r.text)
    player = bearer(await register(client, uid()))
    r = await client.post("/boards", json={"id": board_id()}, headers=player)
    assert r.status_code == 403
    assert (await client.post("/boards", json={"id": board_id()})).status_code == 401


async def test_unknown_board_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/boards/no-such-board")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert (await client.get("/boards/Bad!")).status_code == 422


async def test_delete(client: httpx.AsyncClient, service: Service, redis: aioredis.Redis,
                      pg: asyncpg.Pool) -> None:
    bid = board_id()
    assert (await create(client, service, id=bid)).status_code == 201
    registry = Keys(service.settings.board).boards
    assert await redis.hget(registry, bid)  # writes of it are admitted on this instance
    r = await client.delete(f"/boards/{bid}", headers=admin(service))
    assert r.status_code == 204
    assert await redis.hget(registry, bid) is None  # and from the answer on, refused
    assert (await client.get(f"/boards/{bid}")).status_code == 404
    assert (await client.delete(f"/boards/{bid}", headers=admin(service))).status_code == 404
    r = await client.delete("/boards/default", headers=admin(service))
    assert r.status_code == 409
    deadline = time.monotonic() + 30
    while await pg.fetchval("SELECT count(*) FROM boards WHERE id = $1", bid):
        assert time.monotonic() < deadline, "the purge did not finish"
        await asyncio.sleep(0.2)
    assert not [k async for k in redis.scan_iter(match=f"lb:*:b:{bid}:*")]


@pytest.fixture(scope="module")
def two_gateways(service: Service) -> Iterator[Service]:
    from tests.e2e.conftest import delete_app, deploy

    yield deploy(service.settings, "boards2", "/b2",
                 Gateway={"num_replicas": 2, "max_replicas_per_node": None})
    delete_app("boards2")  # its replicas hold CPU shares later apps need


async def test_created_on_one_replica_usable_on_every_other(
        two_gateways: Service, service: Service) -> None:
    async with httpx.AsyncClient(base_url=two_gateways.base_url, timeout=30) as c:
        bid = board_id()
        r = await c.post("/boards", json={"id": bid}, headers=admin(service))
        assert r.status_code == 201
        # a fresh connection each time: HAProxy spreads them over both replicas
        for _ in range(10):
            async with httpx.AsyncClient(base_url=two_gateways.base_url, timeout=30) as fresh:
                assert (await fresh.get(f"/boards/{bid}")).status_code == 200
        assert (await c.delete(f"/boards/{bid}", headers=admin(service))).status_code == 204
        # only the other replica's refresh loop can drop it there (a hit never reloads):
        # ten fresh connections in a row answer 404 within a bound far above the 1 s target
        start, in_a_row = time.monotonic(), 0
        while in_a_row < 10:
            assert time.monotonic() - start < 15, "a replica still serves the deleted board"
            async with httpx.AsyncClient(base_url=two_gateways.base_url, timeout=30) as fresh:
                gone = (await fresh.get(f"/boards/{bid}")).status_code == 404
            in_a_row = in_a_row + 1 if gone else 0
        print(f"deleted board gone from every replica after {time.monotonic() - start:.2f} s")


# -- writes -------------------------------------------------------------------------------


async def submit(client: httpx.AsyncClient, token: str, bid: str, **body: Any) -> httpx.Response:
    return await client.post(f"/boards/{bid}/scores", json=body, headers=bearer(token))


async def test_writes_follow_each_operator_and_order(client: httpx.AsyncClient,
                                                     service: Service) -> None:
    best, incr = board_id(), board_id()
    assert (await create(client, service, id=best, order="asc", operator="best")).status_code == 201
    assert (await create(client, service, id=incr, operator="incr")).status_code == 201
    ann, bob = uid("ann"), uid("bob")
    t_ann, t_bob = await register(client, ann), await register(client, bob)

    r = await submit(client, t_ann, best, score=90)
    assert r.status_code == 200, r.text
    assert (r.json()["score"], r.json()["season"], r.json()["improved"]) == (90, 1, True)
    r = await submit(client, t_ann, best, score=95)  # asc: 95 is worse than 90
    assert (r.json()["score"], r.json()["improved"]) == (90, False)
    r = await submit(client, t_ann, best, score=80)
    assert (r.json()["score"], r.json()["improved"]) == (80, True)
    r = await submit(client, t_bob, best, score=85)
    assert r.json()["rank"] == 2  # lowest first: ann's 80 leads
    assert (await client.get(f"/boards/{best}")).json()["entries"] == 2

    for delta, total in ((5, 5), (7, 12), (-2, 10)):
        r = await submit(client, t_ann, incr, delta=delta)
        assert r.status_code == 200 and r.json()["score"] == total, r.text
    assert "improved" not in r.json()


async def test_board_write_refusals(client: httpx.AsyncClient, service: Service) -> None:
    best, incr = board_id(), board_id()
    await create(client, service, id=best, operator="best")
    await create(client, service, id=incr, operator="incr")
    token = await register(client, uid())
    r = await submit(client, token, best, delta=1)
    assert r.status_code == 422 and r.json()["error"] == "operator_mismatch"
    r = await submit(client, token, incr, score=1)
    assert r.status_code == 422 and r.json()["error"] == "operator_mismatch"
    r = await submit(client, token, incr, score=1, delta=1)
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = await submit(client, token, incr, delta=2**53)
    assert r.status_code == 422
    r = await submit(client, token, "no-such-board", score=1)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await client.post(f"/boards/{incr}/scores", json={"delta": 1})
    assert r.status_code == 401


async def test_default_board_answers_stay_as_they_were(client: httpx.AsyncClient) -> None:
    user = uid()
    token = await register(client, user)
    r = await submit(client, token, "default", score=7)
    assert r.status_code == 200
    assert set(r.json()) == {"rank", "user_id", "name", "region", "score", "metadata"}
    r = await client.get(f"/rank/{user}")
    assert r.json()["score"] == 7


async def test_batch_items_name_their_board(client: httpx.AsyncClient, service: Service) -> None:
    best = board_id()
    await create(client, service, id=best, order="asc", operator="best")
    users = [uid("bt") for _ in range(3)]
    for u in users:
        await register(client, u)
    server = bearer(issue_token(service.settings, "game", "Game", "GLOBAL", role="server"))
    items = [{"user_id": users[0], "score": 50, "board": best},
             {"user_id": users[1], "score": 40, "board": best},
             {"user_id": users[2], "delta": 5, "board": best},
             {"user_id": users[2], "score": 9, "board": "no-such-board"},
             {"user_id": users[2], "score": 9}]
    r = await client.post("/scores/batch", json={"items": items}, headers=server)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res[0]["entry"]["improved"] is True and res[0]["entry"]["season"] == 1
    assert res[1]["entry"]["rank"] == 1  # asc: 40 before 50
    assert (res[2]["status"], res[2]["error"]) == ("refused", "operator_mismatch")
    assert (res[3]["status"], res[3]["error"]) == ("refused", "not_found")
    assert res[4]["status"] == "applied" and "season" not in res[4]["entry"]
    r = await client.post("/scores/batch", json={"items": [
        {"user_id": users[0], "score": 60, "board": best}]}, headers=server)
    assert r.json()["results"][0]["entry"] == {**r.json()["results"][0]["entry"],
                                               "score": 50, "improved": False}


# -- reads --------------------------------------------------------------------------------


async def test_reads_of_a_board_and_its_season(client: httpx.AsyncClient,
                                               service: Service) -> None:
    bid = board_id()
    await create(client, service, id=bid, order="asc", operator="best", reset=3600)
    season = (await client.get(f"/boards/{bid}")).json()["season"]["number"]
    users = [uid("rd") for _ in range(3)]
    for u, score in zip(users, (30, 10, 20), strict=True):
        r = await submit(client, await register(client, u, region="EU"), bid, score=score)
        assert r.status_code == 200, r.text
    top = (await client.get(f"/boards/{bid}/top", params={"limit": 10})).json()
    assert [e["user_id"] for e in top["entries"]] == [users[1], users[2], users[0]]
    assert (top["total"], top["season"]) == (3, season)
    eu = (await client.get(f"/boards/{bid}/top", params={"region": "EU"})).json()
    assert [e["score"] for e in eu["entries"]] == [10, 20, 30]
    r = await client.get(f"/boards/{bid}/rank/{users[0]}", params={"season": season})
    assert (r.json()["rank"], r.json()["score"], r.json()["season"]) == (3, 30, season)
    r = await client.get(f"/boards/{bid}/around/{users[2]}", params={"range": 1})
    body = r.json()
    assert body["self"]["rank"] == 2 and [e["rank"] for e in body["around"]] == [1, 3]
    r = await client.get(f"/boards/{bid}/top", params={"season": season + 1})
    assert r.status_code == 404 and r.json()["error"] == "season_not_started"
    r = await client.get(f"/boards/{bid}/rank/{uid('nobody')}")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await client.get("/boards/no-such-board/top")
    assert r.status_code == 404


async def test_default_board_reads_through_board_paths(client: httpx.AsyncClient) -> None:
    user = uid()
    await submit(client, await register(client, user), "default", score=3)
    plain = (await client.get(f"/rank/{user}")).json()
    board = (await client.get(f"/boards/default/rank/{user}")).json()
    assert board == {**plain, "season": 1}, (sorted(board.items()), sorted(plain.items()))
    r = await client.get("/boards/default/top", params={"season": 2})
    assert r.status_code == 404
