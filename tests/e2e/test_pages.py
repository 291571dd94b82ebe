"""What game clients read, over HTTP (issue 11): pages by cursor under live writes, friends'
ranks, and a rank's position context (total, percentile, gap to the next rank).

Boards are filled through the batch endpoint; the expected standings come from the boards model
(tests/boards_model.py), fed each write with the version and season its answer carries.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import httpx
import pytest
import ray

from leaderboard.boards import Board
from leaderboard.serve.auth import issue_token
from leaderboard.settings import GLOBAL
from tests.boards_model import BoardModel
from tests.e2e.conftest import Service, bearer, uid
from tests.e2e.test_boards import admin, board_id

REGIONS = ("EU", "NA", "ASIA")


async def accounts(pg: asyncpg.Pool, users: list[str]) -> None:
    """Accounts for the batch endpoint to look names and regions up (no sign-up needed)."""
    await pg.execute(
        "INSERT INTO credentials (user_id, name, region, password_hash) "
        "SELECT u, 'Name ' || u, r, 'x' FROM unnest($1::text[], $2::text[]) AS t(u, r) "
        "ON CONFLICT DO NOTHING", users, [REGIONS[i % 3] for i in range(len(users))])


async def make_board(client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool,
                     **fields: Any) -> BoardModel:
    bid = board_id()
    r = await client.post("/boards", headers=admin(service), json={"id": bid, **fields})
    assert r.status_code == 201, r.text
    return BoardModel(Board.from_row(await pg.fetchrow("SELECT * FROM boards WHERE id = $1", bid)))


async def batch(client: httpx.AsyncClient, service: Service, model: BoardModel,
                writes: list[tuple[str, int]]) -> None:
    """Scores through /scores/batch on the model's board; the model follows the answers."""
    server = bearer(issue_token(service.settings, "srv", "Server", "GLOBAL", role="server"))
    kind = "delta" if model.board.operator == "incr" else "score"
    for at in range(0, len(writes), 1000):
        chunk = writes[at:at + 1000]
        r = await client.post("/scores/batch", headers=server, json={"items": [
            {"user_id": u, kind: v, "board": model.board.id} for u, v in chunk]})
        assert r.status_code == 200, r.text
        for (user, value), res in zip(chunk, r.json()["results"], strict=True):
            assert res["status"] == "applied", res
            e = res["entry"]
            if e.get("improved", True):
                model.write(e["version"], user, e["name"], e["region"], kind, value)


def standing(model: BoardModel, region: str = GLOBAL) -> list[tuple[int, str, int]]:
    return [(i, e.user_id, e.score) for i, e in
            enumerate(model.standings(1, region), start=1)]


async def test_paging_holds_under_writes_and_a_gateway_restart(
    client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool
) -> None:
    users = [f"pg{uid('')[1:9]}-{i:04d}" for i in range(5000)]
    await accounts(pg, users)
    model = await make_board(client, service, pg)
    rng = random.Random(7)
    await batch(client, service, model, [(u, rng.randint(0, 2000)) for u in users])
    touched = set(users[:500])  # only these are written while paging
    order = [e.user_id for e in model.standings(1) if e.user_id not in touched]
    stop = asyncio.Event()

    server = bearer(issue_token(service.settings, "srv", "Server", "GLOBAL", role="server"))

    async def writer(seed: int) -> None:
        """Writes to the touched users; a batch the gateway restart cut off is just lost."""
        r = random.Random(seed)
        mine = sorted(touched)
        while not stop.is_set():
            items = [{"user_id": r.choice(mine), "score": r.randint(0, 2000),
                      "board": model.board.id} for _ in range(50)]
            try:
                await client.post("/scores/batch", headers=server, json={"items": items})
            except httpx.TransportError:
                await asyncio.sleep(0.1)

    async def page_through() -> list[str]:
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 100}
        pages = 0
        while True:
            r = await get_retrying(client, f"/boards/{model.board.id}/top", params)
            body = r.json()
            assert body["season"] == 1 and len(body["entries"]) <= 100
            seen += [e["user_id"] for e in body["entries"]]
            pages += 1
            if pages == 20:  # half way: the gateway replica is replaced, cursors carry on
                await asyncio.to_thread(kill_gateways)
            if body["next"] is None:
                return seen
            params = {"limit": 100, "cursor": body["next"]}

    writers = [asyncio.create_task(writer(s)) for s in range(4)]
    try:
        seen = await page_through()
    finally:
        stop.set()
        await asyncio.gather(*writers)
    untouched = [u for u in seen if u not in touched]
    assert untouched == order  # each exactly once, in rank order


def kill_gateways() -> None:
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if "#Gateway#" in actor["name"]:
            ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]))


async def get_retrying(client: httpx.AsyncClient, path: str, params: dict[str, Any],
                       tries: int = 300) -> httpx.Response:
    """A read across a gateway restart: refused connections and 503s are retried."""
    for _ in range(tries):
        try:
            r = await client.get(path, params=params)
        except httpx.TransportError:
            await asyncio.sleep(0.1)
            continue
        if r.status_code not in (502, 503, 504):
            assert r.status_code == 200, r.text
            return r
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never answered")


@pytest.mark.parametrize(("order", "operator"), [("desc", "set"), ("asc", "best")])
async def test_rank_position_and_friends_agree_with_the_model(
    client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool, order: str, operator: str
) -> None:
    users = [f"fr{uid('')[1:9]}-{i:02d}" for i in range(40)]
    await accounts(pg, users)
    model = await make_board(client, service, pg, order=order, operator=operator)
    rng = random.Random(3)
    await batch(client, service, model, [(u, rng.choice([5, 5, 7, 9, -2, 0])) for u in users[:30]])
    bid = model.board.id
    for region in (GLOBAL, *REGIONS):
        want = standing(model, region)
        total = len(want)
        for i, (rank, user, score) in enumerate(want):
            r = await client.get(f"/boards/{bid}/rank/{user}", params={"region": region})
            body = r.json()
            above = None if i == 0 else want[i - 1][2]
            gap = None if above is None else (above + 1 - score if order == "desc"
                                              else above - 1 - score)
            assert (body["rank"], body["total"], body["percentile"], body["gap_to_next"]) == (
                rank, total, (10_000 * (total - rank) // total) / 100, gap), (region, user)
        # friends: present and missing ids, duplicates, in rank order
        asked = [users[35], users[0], users[0], users[12], users[29], "nobody-here"]
        r = await client.get(f"/boards/{bid}/ranks",
                             params={"region": region, "user_ids": ",".join(asked)})
        assert r.status_code == 200, r.text
        body = r.json()
        mine = [w for w in want if w[1] in asked]
        assert [(e["rank"], e["user_id"], e["score"]) for e in body["entries"]] == mine
        assert body["missing"] == [u for u in dict.fromkeys(asked) if u not in
                                   {w[1] for w in mine}]
        # a page from a rank, and a page after a cursor, agree with the model
        r = await client.get(f"/boards/{bid}/top", params={"region": region, "limit": 3,
                                                           "from_rank": 4})
        assert [(e["rank"], e["user_id"]) for e in r.json()["entries"]] == [
            (w[0], w[1]) for w in want[3:6]]
    hundred = users + [f"x{i}" for i in range(60)]
    r = await client.get(f"/boards/{bid}/ranks", params={"user_ids": ",".join(hundred)})
    assert r.status_code == 200 and len(r.json()["entries"]) == 30
    assert len(r.json()["missing"]) == 70


async def test_bad_cursors_and_lists_are_422(client: httpx.AsyncClient, service: Service,
                                             pg: asyncpg.Pool) -> None:
    users = [f"bc{uid('')[1:9]}-{i}" for i in range(5)]
    await accounts(pg, users)
    model = await make_board(client, service, pg)
    other = await make_board(client, service, pg)
    await batch(client, service, model, [(u, i) for i, u in enumerate(users)])
    await batch(client, service, other, [(u, i) for i, u in enumerate(users)])
    page = (await client.get(f"/boards/{model.board.id}/top", params={"limit": 2})).json()
    cursor = page["next"]
    assert cursor is not None
    ok = await client.get(f"/boards/{model.board.id}/top", params={"limit": 2, "cursor": cursor})
    assert ok.status_code == 200 and len(ok.json()["entries"]) == 2
    for path, params in [
        (f"/boards/{other.board.id}/top", {"cursor": cursor}),  # another board's
        (f"/boards/{model.board.id}/top", {"cursor": cursor, "region": "EU"}),  # another region
        ("/top", {"cursor": cursor}),  # a board's cursor on the seed's path
        (f"/boards/{model.board.id}/top", {"cursor": "not-a-cursor"}),
        (f"/boards/{model.board.id}/top", {"cursor": cursor[:-3]}),
        (f"/boards/{model.board.id}/top", {"cursor": cursor, "from_rank": 2}),
    ]:
        r = await client.get(path, params=params)
        assert r.status_code == 422 and r.json()["error"] == "cursor_invalid", (params, r.text)
    for params in [{"from_rank": 0}, {"from_rank": 10_000_001}, {"limit": 1001},
                   {"cursor": ""}]:
        r = await client.get(f"/boards/{model.board.id}/top", params=params)
        assert r.status_code == 422 and r.json()["error"] == "validation_error", params
    for ids in ["", ",", "a,,b", "bad id", ",".join(f"u{i}" for i in range(101)), "a" * 65]:
        r = await client.get(f"/boards/{model.board.id}/ranks", params={"user_ids": ids})
        assert r.status_code == 422 and r.json()["error"] == "validation_error", ids
    assert (await client.get(f"/boards/{model.board.id}/ranks")).status_code == 422
