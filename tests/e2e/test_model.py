"""A random sequence of writes through HTTP, checked against a plain Python model of the boards."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import asyncpg
import httpx
import redis.asyncio as aioredis

from leaderboard.keys import Keys
from tests.e2e.conftest import Service, bearer, register, wait_drained

REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]


@dataclass
class Model:
    """Boards as the spec defines them: score desc, then first to reach the score."""

    score: dict[str, int] = field(default_factory=dict)
    reached: dict[str, int] = field(default_factory=dict)
    region: dict[str, str] = field(default_factory=dict)
    clock: int = 0

    def write(self, user: str, new: int) -> None:
        self.clock += 1
        if user not in self.score or self.score[user] != new:
            self.reached[user] = self.clock
        self.score[user] = new

    def board(self, region: str) -> list[str]:
        users = [u for u in self.score if region == "GLOBAL" or self.region[u] == region]
        return sorted(users, key=lambda u: (-self.score[u], self.reached[u]))

    def entry(self, user: str, rank: int) -> dict[str, object]:
        return {"rank": rank, "user_id": user, "name": f"Name {user}",
                "region": self.region[user], "score": self.score[user],
                "metadata": {}}


async def apply_random_write(
    client: httpx.AsyncClient, rng: random.Random, model: Model, tokens: dict[str, str], user: str
) -> None:
    op = rng.choice(["update", "update", "add", "add", "create"])
    headers = bearer(tokens[user])
    if op == "update":
        value = rng.randint(0, 40)
        r = await client.post("/score/update", json={"score": value}, headers=headers)
        assert r.status_code == 200, r.text
        model.write(user, value)
    elif op == "add":
        delta = rng.randint(-5, 5)
        r = await client.post("/score/add", json={"delta": delta}, headers=headers)
        assert r.status_code == 200, r.text
        model.write(user, model.score.get(user, 0) + delta)
    else:
        value = rng.randint(0, 40)
        r = await client.post("/score/create", json={"initialScore": value}, headers=headers)
        if user in model.score:
            assert r.status_code == 409, r.text
            return
        assert r.status_code == 201, r.text
        model.write(user, value)
    body = r.json()
    assert body["score"] == model.score[user]
    assert body["rank"] == model.board("GLOBAL").index(user) + 1


async def test_random_writes_match_model_then_postgres_matches_redis(
    service: Service, client: httpx.AsyncClient, clean: None,
    redis: aioredis.Redis, pg: asyncpg.Pool,
) -> None:
    rng = random.Random(20261128)
    model = Model()
    users = [f"m{i:03d}" for i in range(200)]
    tokens: dict[str, str] = {}
    sem = asyncio.Semaphore(16)

    async def sign_up(user: str) -> None:
        region = REGIONS[int(user[1:]) % 4]
        model.region[user] = region
        async with sem:
            tokens[user] = await register(client, user, region=region)

    await asyncio.gather(*(sign_up(u) for u in users))
    for _ in range(1000):
        await apply_random_write(client, rng, model, tokens, rng.choice(users))

    for region in REGIONS:
        expected = model.board(region)
        r = await client.get("/top", params={"region": region, "limit": 1000})
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == len(expected)
        assert body["entries"] == [model.entry(u, i + 1) for i, u in enumerate(expected)]

    # the writes are over: the reads go out concurrently (16 at a time), each checked alone
    async def check_ranks(user: str) -> None:
        async with sem:
            for region in ("GLOBAL", model.region[user]):
                r = await client.get(f"/rank/{user}", params={"region": region})
                if user not in model.score:
                    assert r.status_code == 404
                    continue
                board = model.board(region)
                i = board.index(user)
                gap = None if i == 0 else model.score[board[i - 1]] + 1 - model.score[user]
                assert r.json() == {
                    **model.entry(user, i + 1), "total": len(board),
                    "percentile": (10_000 * (len(board) - i - 1) // len(board)) / 100,
                    "gap_to_next": gap}
            other = next(x for x in REGIONS[1:] if x != model.region[user])
            assert (await client.get(f"/rank/{user}", params={"region": other})).status_code == 404

    async def check_around(user: str, region: str, span: int) -> None:
        async with sem:
            r = await client.get(f"/around/{user}", params={"region": region, "range": span})
        assert r.status_code == 200, r.text
        board = model.board(region)
        i = board.index(user)
        lo, hi = max(0, i - span), min(len(board), i + span + 1)
        assert r.json() == {
            "region": region,
            "self": model.entry(user, i + 1),
            "around": [model.entry(u, j + 1) for j, u in enumerate(board) if lo <= j < hi and j != i],
            "total": len(board),
        }

    await asyncio.gather(*(check_ranks(u) for u in users))
    arounds = [(u, rng.choice(["GLOBAL", model.region[u]]), rng.randint(1, 12))
               for u in rng.sample(sorted(model.score), 60)]
    await asyncio.gather(*(check_around(*a) for a in arounds))

    await wait_drained(redis, service.settings)
    keys = Keys(service.settings.board)
    stored = {r["user_id"]: r for r in await pg.fetch("SELECT * FROM leaderboard")}
    assert set(stored) == set(model.score)
    for user, score in model.score.items():
        h = await redis.hgetall(keys.user(user))
        row = stored[user]
        assert (row["score"], row["version"], row["reached"]) == (
            score, int(h["version"]), int(h["reached"])
        )
        assert int(h["score"]) == score


async def test_concurrent_adds_on_one_user_are_all_applied(
    service: Service, client: httpx.AsyncClient, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    token = await register(client, "adder-" + str(random.randrange(10**9)), region="ASIA")
    responses = await asyncio.gather(
        *(client.post("/score/add", json={"delta": 3}, headers=bearer(token)) for _ in range(100))
    )
    assert all(r.status_code == 200 for r in responses)
    scores = sorted(r.json()["score"] for r in responses)
    assert scores == list(range(3, 301, 3))  # every add saw a distinct, atomic predecessor
