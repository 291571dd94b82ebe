"""Rate limits and backpressure through HTTP, on apps of their own (boards "rl" and "rf")."""

from __future__ import annotations

import asyncio
import math
import random
import time

import asyncpg
import httpx
import redis.asyncio as aioredis

from leaderboard.keys import Keys
from leaderboard.pipeline.events import named
from leaderboard.serve.auth import issue_token
from tests.e2e.conftest import QUEUE_LIMIT, Service, bearer, uid, wait_drained


def token(svc: Service, user: str, region: str = "EU", role: str = "player") -> str:
    return issue_token(svc.settings, user, f"Name {user}", region, role=role)


def address() -> dict[str, str]:
    """A client address of its own (the gateway trusts X-Forwarded-For from its local proxy)."""
    return {"X-Forwarded-For": f"127.{random.randrange(1, 255)}.{random.randrange(255)}."
                               f"{random.randrange(1, 255)}"}


def assert_429(r: httpx.Response, error: str, scope: str | None = None) -> int:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["error"] == error and body.get("scope") == scope and body["detail"]
    return int(r.headers["Retry-After"])


async def test_fifty_concurrent_writes_by_one_user_admit_exactly_five(
    limited: Service, rl: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    user = uid("burst")
    reg = await rl.post("/auth/register", headers=address(), json={
        "user_id": user, "name": "Burst", "region": "EU", "password": "correct horse"})
    assert reg.status_code == 201, reg.text
    headers = bearer(reg.json()["token"])
    responses = await asyncio.gather(
        *(rl.post("/score/add", json={"delta": 1}, headers=headers) for _ in range(50)))
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(admitted) == 5 and len(refused) == 45
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in admitted) == [0, 1, 2, 3, 4]
    assert {r.headers["X-RateLimit-Limit"] for r in admitted} == {"5"}
    assert sorted(r.json()["score"] for r in admitted) == [1, 2, 3, 4, 5]
    retry = {assert_429(r, "rate_limited", "user") for r in refused}
    assert retry <= {11, 12}  # one token per 60/5 = 12 s, minus what has refilled since
    keys = Keys("rl")
    assert await redis.hget(keys.user(user), "score") == "5"
    events = [f for _, f in await redis.xrange(keys.stream("EU")) if named(f)["user_id"] == user]
    stored = await redis.xlen(keys.stream("EU"))
    assert len(events) == 5 or stored < 5  # 5 on the stream, or already moved to Postgres
    r = await rl.get(f"/rank/{user}", params={"region": "EU"})
    assert r.json()["score"] == 5


async def test_admin_endpoints_need_an_admin_token(limited: Service, rl: httpx.AsyncClient) -> None:
    assert (await rl.post("/admin/writers/pause")).status_code == 401
    player = await rl.post("/admin/writers/pause", headers=bearer(token(limited, uid())))
    assert player.status_code == 403 and player.json()["error"] == "forbidden"
    r = await rl.get("/admin/writers", headers=bearer(token(limited, "ops", "GLOBAL", "admin")))
    assert r.status_code == 200 and [w["paused"] for w in r.json()["writers"]] == [False]


async def test_backlog_limit_per_shard_then_drain_loses_nothing(
    limited: Service, rl: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    admin = bearer(token(limited, "ops", "GLOBAL", "admin"))
    keys = Keys("rl")
    await wait_drained(redis, limited.settings)
    paused = await rl.post("/admin/writers/pause", headers=admin)
    assert paused.status_code == 200 and all(w["paused"] for w in paused.json()["writers"])
    try:
        users = [uid("bp") for _ in range(QUEUE_LIMIT + 10)]
        results = []
        for i, user in enumerate(users):  # one write each: the user buckets stay out of it
            r = await rl.post("/score/update", json={"score": i},
                              headers=bearer(token(limited, user)))
            results.append(r)
        assert [r.status_code for r in results] == [200] * QUEUE_LIMIT + [429] * 10
        assert {assert_429(r, "queue_full") for r in results[QUEUE_LIMIT:]} == {1}
        assert await redis.xlen(keys.stream("EU")) == QUEUE_LIMIT
        na = await rl.post("/score/update", json={"score": 7},
                           headers=bearer(token(limited, uid("na"), "NA")))
        assert na.status_code == 200  # the limit is per shard
        health = (await rl.get("/health")).json()
        assert health["backlog"]["EU"] == QUEUE_LIMIT
    finally:
        await rl.post("/admin/writers/resume", headers=admin)
    await wait_drained(redis, limited.settings)
    again = await rl.post("/score/update", json={"score": 1},
                          headers=bearer(token(limited, uid("after"))))
    assert again.status_code == 200
    admitted = users[:QUEUE_LIMIT]
    pg = await asyncpg.connect(limited.settings.dsn())
    try:
        rows = await pg.fetch("SELECT user_id, score FROM leaderboard WHERE user_id = ANY($1)",
                              users)
    finally:
        await pg.close()
    assert {r["user_id"]: r["score"] for r in rows} == {u: i for i, u in enumerate(admitted)}


async def test_sign_up_and_login_limited_per_address(
    limited: Service, rl: httpx.AsyncClient
) -> None:
    here, elsewhere = address(), address()
    first = uid("auth")
    bodies = [{"user_id": first if i == 0 else uid("auth"), "name": "A", "region": "NA",
               "password": "correct horse"} for i in range(5)]
    for body in bodies:
        assert (await rl.post("/auth/register", json=body, headers=here)).status_code == 201
    sixth = await rl.post("/auth/register", headers=here, json={
        "user_id": uid("auth"), "name": "A", "region": "NA", "password": "correct horse"})
    assert assert_429(sixth, "rate_limited", "auth") in {11, 12}
    login = {"user_id": first, "password": "correct horse"}
    assert_429(await rl.post("/auth/login", json=login, headers=here), "rate_limited", "auth")
    assert (await rl.post("/auth/login", json=login, headers=elsewhere)).status_code == 200


async def test_user_bucket_refills_at_the_configured_rate(
    refilling: Service, rf: httpx.AsyncClient
) -> None:
    headers = bearer(token(refilling, uid("refill"), "NA"))
    burst = await asyncio.gather(
        *(rf.post("/score/add", json={"delta": 1}, headers=headers) for _ in range(10)))
    assert sorted(r.status_code for r in burst) == [200] * 4 + [429] * 6
    start = time.monotonic()
    admitted = 0
    while time.monotonic() - start < 3.0:
        r = await rf.post("/score/add", json={"delta": 1}, headers=headers)
        assert r.status_code in (200, 429), r.text
        admitted += r.status_code == 200
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - start
    # refill is 4 tokens / 2 s = 2 per second
    assert math.floor(2 * elapsed) - 1 <= admitted <= math.ceil(2 * elapsed) + 1


async def test_region_cap_across_many_users(refilling: Service, rf: httpx.AsyncClient) -> None:
    await asyncio.sleep(1.1)  # let the EU bucket fill up again (10 per second)
    start = time.monotonic()
    responses = await asyncio.gather(*(
        rf.post("/score/update", json={"score": i}, headers=bearer(token(refilling, uid("reg"))))
        for i in range(40)))
    elapsed = time.monotonic() - start
    admitted = sum(r.status_code == 200 for r in responses)
    assert 10 <= admitted <= 10 + math.ceil(10 * elapsed) + 1
    assert {assert_429(r, "rate_limited", "region") for r in responses
            if r.status_code != 200} == {1}
    other = await rf.post("/score/update", json={"score": 1},
                          headers=bearer(token(refilling, uid("reg"), "NA")))
    assert other.status_code == 200


def test_main_test_app_runs_with_limits_off(service: Service) -> None:
    limits = service.settings.limits()  # the main test app runs with RATE_LIMITS_ENABLED=false
    assert not (limits.user.enabled or limits.region.enabled or limits.auth.enabled)
    assert limits.queue_length == 0
