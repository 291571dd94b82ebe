"""Seasons end to end over HTTP, against tests/boards_model.py (issue 10's model-based test).

Three boards at once (desc/set, asc/best, desc/incr), each resetting every 2 seconds; 24 users
over 3 regions (8 a region: more than an around window of 7, so its edges and middle are both
read); 4 concurrent clients writing at random across at least 4 season boundaries.
Then: every acknowledged write is in the season its answer named; each ended season's archive
(top, rank and around of every user, GLOBAL and regions) equals the model's standings at that
season's end; the live season equals the model; the season rows moved from ``leaderboard`` into
the archive; and Redis no longer holds ended seasons' keys. A second run restarts the shard
actors and kill -9s a writer mid-run.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from leaderboard.boards import Board
from leaderboard.keys import Keys
from leaderboard.settings import GLOBAL
from tests.boards_model import BoardModel
from tests.e2e.conftest import Service, Sharded, app_client, bearer, register
from tests.e2e.test_boards import admin

REGIONS = ("EU", "NA", "ASIA")
USERS = 24  # every one's rank and around is read in every ended season: ~4 requests each
KINDS = (("desc", "set"), ("asc", "best"), ("desc", "incr"))
RESET_S = 2
BOUNDARIES = 4
CLIENTS = 4


@dataclass(frozen=True)
class Ack:
    board: str
    user: str
    kind: str  # score | delta
    value: int
    answer: dict[str, Any]


@dataclass
class Run:
    boards: dict[str, Board]
    users: dict[str, tuple[str, str]]  # user id -> (region, token)
    acks: list[Ack]


async def setup(client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool) -> Run:
    tag = uuid.uuid4().hex[:6]
    boards = {}
    for order, operator in KINDS:
        bid = f"s{tag}-{operator}"
        r = await client.post("/boards", headers=admin(service), json={
            "id": bid, "order": order, "operator": operator, "reset": RESET_S})
        assert r.status_code == 201, r.text
        row = await pg.fetchrow("SELECT * FROM boards WHERE id = $1", bid)
        boards[bid] = Board.from_row(row)
    users = {}
    for i in range(USERS):
        user, region = f"p{tag}-{i:02d}", REGIONS[i % len(REGIONS)]
        users[user] = (region, await register(client, user, region))
    return Run(boards, users, [])


async def write(client: httpx.AsyncClient, run: Run, rng: random.Random) -> None:
    """One random write, retried with its Idempotency-Key until it has an answer."""
    bid = rng.choice(sorted(run.boards))
    board, user = run.boards[bid], rng.choice(sorted(run.users))
    kind = "delta" if board.operator == "incr" else (
        "delta" if rng.random() < 0.3 and board.operator == "set" else "score")
    value = rng.randint(1, 9) if kind == "delta" else rng.randint(-50, 50)
    headers = {**bearer(run.users[user][1]), "Idempotency-Key": uuid.uuid4().hex}
    for _ in range(100):
        try:
            r = await client.post(f"/boards/{bid}/scores", json={kind: value}, headers=headers)
        except httpx.HTTPError:
            await asyncio.sleep(0.1)
            continue
        if r.status_code == 200:
            run.acks.append(Ack(bid, user, kind, value, r.json()))
            return
        assert r.status_code == 503, r.text  # a restarting shard: the same key again
        await asyncio.sleep(0.1)
    raise AssertionError("a write never got an answer")


CATCH_UP_S = 30  # after a chaos run's outage: how long writes go on for every board to get one


def reached_last_boundary(run: Run) -> bool:
    """Every board has a write acknowledged after the last boundary the run is meant to cross."""
    seasons = {bid: 0 for bid in run.boards}
    for ack in run.acks:
        seasons[ack.board] = max(seasons[ack.board], ack.answer["season"])
    return min(seasons.values()) >= BOUNDARIES + 1


async def write_for(client: httpx.AsyncClient, run: Run, until_us: int, seed: int) -> None:
    """Writes until ``until_us``, then on (at most ``CATCH_UP_S``) until every board has a write
    past the last boundary: restarted shard actors took ~5 s on a loaded CI machine once, which
    left one board of three without a write in the seasons after the outage."""
    rng = random.Random(seed)
    give_up = until_us + CATCH_UP_S * 1_000_000
    while time.time() * 1e6 < until_us or (
            not reached_last_boundary(run) and time.time() * 1e6 < give_up):
        await write(client, run, rng)


def models_of(run: Run) -> dict[str, BoardModel]:
    """The model fed every acknowledged write in version order; each answer checked on the way."""
    models = {bid: BoardModel(b) for bid, b in run.boards.items()}
    for ack in sorted(run.acks, key=lambda a: a.answer["version"]):
        model, answer = models[ack.board], ack.answer
        region = run.users[ack.user][0]
        if answer.get("improved") is False:  # a best write that did not beat the record
            assert answer["season"] == model.board.schedule.season_at(answer["version"])
            continue
        outcome = model.write(answer["version"], ack.user, f"Name {ack.user}", region,
                              ack.kind, ack.value)  # type: ignore[arg-type]
        assert (answer["season"], answer["score"]) == (outcome.season, outcome.entry.score), ack
    return models


def ranked(entries: list[Any]) -> list[tuple[int, str, int]]:
    return [(e["rank"], e["user_id"], e["score"]) for e in entries]


def expected(model: BoardModel, season: int, region: str) -> list[tuple[int, str, int]]:
    return [(i, e.user_id, e.score) for i, e in
            enumerate(model.standings(season, region), start=1)]


async def check_top(client: httpx.AsyncClient, model: BoardModel, season: int | None) -> int:
    """Top of every region of a season (None: the live one) equals the model; the season."""
    answered = season
    for region in (GLOBAL, *REGIONS):
        params: dict[str, Any] = {"region": region, "limit": 100}
        if season is not None:
            params["season"] = season
        r = await client.get(f"/boards/{model.board.id}/top", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        answered = body["season"]
        want = expected(model, body["season"], region)
        assert (ranked(body["entries"]), body["total"]) == (want, len(want)), (region, season)
    assert answered is not None
    return int(answered)


async def check_user(client: httpx.AsyncClient, run: Run, model: BoardModel, season: int,
                     user: str) -> None:
    """rank and around of one user in GLOBAL and their region equal the model."""
    bid = model.board.id
    for region in (GLOBAL, run.users[user][0]):
        want = expected(model, season, region)
        mine = [w for w in want if w[1] == user]
        params = {"region": region, "season": season}
        r = await client.get(f"/boards/{bid}/rank/{user}", params=params)
        if not mine:
            assert r.status_code == 404, r.text
            continue
        assert r.status_code == 200 and ranked([r.json()]) == mine, (r.text, mine)
        r = await client.get(f"/boards/{bid}/around/{user}", params={**params, "range": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        rank = mine[0][0]
        window = [w for w in want if abs(w[0] - rank) <= 3]
        got = sorted([*ranked(body["around"]), *ranked([body["self"]])])
        assert got == window, (user, region, season)


async def gather_limited(calls: list[Callable[[], Awaitable[None]]], n: int = 8) -> None:
    sem = asyncio.Semaphore(n)

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def wait_archived(pg: asyncpg.Pool, run: Run, last: dict[str, int],
                        timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await pg.fetch("SELECT id, archived_through FROM boards WHERE id = ANY($1)",
                              list(run.boards))
        if all(r["archived_through"] >= last[r["id"]] for r in rows):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"seasons not archived in {timeout} s: {rows}, want {last}")


async def scenario(client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool,
                   redis: list[aioredis.Redis],
                   chaos: Callable[[], Awaitable[None]] | None = None) -> None:
    run = await setup(client, service, pg)
    first = min(b.start_us for b in run.boards.values())
    until = first + (BOUNDARIES * RESET_S + 1) * 1_000_000
    tasks = [write_for(client, run, until, seed) for seed in range(CLIENTS)]
    await asyncio.gather(*tasks, *([chaos()] if chaos else []))
    models = models_of(run)
    last = {bid: max(a.answer["season"] for a in run.acks if a.board == bid) for bid in models}
    seen = sorted(Counter((a.board[-4:], a.answer["season"], a.answer.get("improved"))
                          for a in run.acks).items())
    assert min(last.values()) >= BOUNDARIES + 1, (last, seen)
    for model in models.values():  # the live season, right after the writes
        await check_top(client, model, None)
    await wait_archived(pg, run, last)
    checks: list[Callable[[], Awaitable[None]]] = []
    for bid, model in models.items():
        for season in range(1, last[bid] + 1):
            checks.append(lambda m=model, s=season: check_top(client, m, s))  # type: ignore[misc]
            for user in run.users:
                checks.append(lambda m=model, s=season, u=user:  # type: ignore[misc]
                              check_user(client, run, m, s, u))
    await gather_limited(checks)
    await check_storage(pg, redis, service, run, models, last)
    print(f"seasons: {len(run.acks)} acknowledged writes over {sum(last.values())} seasons")


async def check_storage(pg: asyncpg.Pool, redis: list[aioredis.Redis], service: Service,
                        run: Run, models: dict[str, BoardModel], last: dict[str, int]) -> None:
    """Archives hold each season's final scores; its rows and Redis keys are gone."""
    keys = Keys(service.settings.board)
    for bid, model in models.items():
        rows = await pg.fetch("SELECT season, user_id, score FROM archive_entries "
                              "WHERE board = $1", bid)
        want = {(s, u, e.score) for s, entries in model.seasons.items()
                for u, e in entries.items() if s <= last[bid]}
        assert {(r["season"], r["user_id"], r["score"]) for r in rows} == want
        assert not await pg.fetchval(
            "SELECT count(*) FROM leaderboard WHERE board = $1 AND season <= $2", bid, last[bid])
        board = run.boards[bid]
        for season in range(1, last[bid] + 1):
            prefix = keys.season(bid, board.generation, season).prefix
            for instance in redis:
                assert not [k async for k in instance.scan_iter(match=f"{prefix}*", count=1000)]
        r = await asyncio.to_thread(httpx.get, f"{service.base_url}/boards/{bid}/seasons")
        listed = {s["number"]: s["entries"] for s in r.json()["seasons"] if s["ended_at"]}
        assert listed == {s: len(e) for s, e in model.seasons.items()
                          if s <= last[bid] and e}, r.text


async def test_seasons_roll_over_exactly_under_concurrent_writes(
    client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    await scenario(client, service, pg, [redis])


async def test_seasons_survive_shard_restarts_and_a_killed_writer(
    client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    import ray

    from leaderboard.actors.router import shard_actor_name
    from leaderboard.shards import Topology

    s = service.settings
    admin_headers = admin(service)

    async def chaos() -> None:
        await asyncio.sleep(RESET_S * 1.5)
        for shard in Topology.of(s).all_shards():
            ray.kill(ray.get_actor(shard_actor_name(s, shard), namespace=s.ray_namespace),
                     no_restart=False)
        await asyncio.sleep(RESET_S)
        r = await client.get("/admin/writers", headers=admin_headers)
        os.kill(int(r.json()["writers"][0]["pid"]), signal.SIGKILL)

    await scenario(client, service, pg, [redis], chaos)


async def test_seasons_roll_over_exactly_on_two_redis_instances(sharded: Sharded) -> None:
    """EU and ASIA on a second instance: their writes fold into GLOBAL on the first; each
    instance is fenced, drained and freed by its own shards."""
    s = sharded.app.settings
    pool = await asyncpg.create_pool(s.dsn(), min_size=1, max_size=4)
    main = aioredis.Redis.from_url(s.redis_url, decode_responses=True)
    other = aioredis.Redis.from_url(sharded.second.url, decode_responses=True)
    try:
        async with app_client(sharded.app) as client:
            await scenario(client, sharded.app, pool, [main, other])
    finally:
        await pool.close()
        await main.aclose()
        await other.aclose()


async def test_a_season_with_a_dead_letter_waits_and_health_says_so(
    client: httpx.AsyncClient, service: Service, pg: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    bid = f"dl{uuid.uuid4().hex[:8]}"
    r = await client.post("/boards", headers=admin(service), json={"id": bid, "reset": 1})
    assert r.status_code == 201, r.text
    user = f"dl-{uuid.uuid4().hex[:8]}"
    token = await register(client, user, "NA")
    r = await client.post(f"/boards/{bid}/scores", json={"score": 5}, headers=bearer(token))
    season = r.json()["season"]
    dead = Keys(service.settings.board).dead("NA")
    entry = await redis.xadd(dead, {"e": f"5 9 9 9 NA {user} X", "b": f"{bid} {season}",
                                    "_error": "refused by Postgres"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = (await client.get("/health")).json()
            if {"board": bid, "season": season} in health.get("archive_blocked", []):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"/health never listed the blocked season: {health}")
        assert await pg.fetchval("SELECT archived_through FROM boards WHERE id = $1",
                                 bid) < season
    finally:
        await redis.xdel(dead, entry)
    deadline = time.monotonic() + 30
    while await pg.fetchval("SELECT archived_through FROM boards WHERE id = $1", bid) < season:
        assert time.monotonic() < deadline, "the season was not archived after the repair"
        await asyncio.sleep(0.2)
