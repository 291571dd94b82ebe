"""One refusal vocabulary: the same refusal met by a single write and by a /scores/batch item
carries the same error code, detail, scope and Retry-After; applied entries carry the same flags.
"""

from __future__ import annotations

import random
import re
from typing import Any

import httpx
import redis.asyncio as aioredis

from leaderboard.keys import Keys
from leaderboard.serve.auth import issue_token
from tests.e2e.conftest import QUEUE_LIMIT, Service, bearer, uid, wait_drained

MAX = 2**53 - 1


def player(svc: Service, user: str) -> dict[str, str]:
    return bearer(issue_token(svc.settings, user, f"Name {user}", "EU"))


def server(svc: Service) -> dict[str, str]:
    return bearer(issue_token(svc.settings, "game-server", "Game server", "GLOBAL", role="server"))


async def registered(c: httpx.AsyncClient, user: str, score: int | None = None) -> None:
    body: dict[str, Any] = {"user_id": user, "name": f"Name {user}", "region": "EU",
                            "password": "correct horse battery"}
    if score is not None:
        body["initialScore"] = score
    address = f"127.{random.randrange(1, 255)}.{random.randrange(255)}.{random.randrange(1, 255)}"
    r = await c.post("/auth/register", json=body, headers={"X-Forwarded-For": address})
    assert r.status_code == 201, r.text


def single(r: httpx.Response, status: int) -> dict[str, Any]:
    """A single write's refusal as a batch item would say it."""
    assert r.status_code == status, r.text
    said: dict[str, Any] = r.json()
    if "retry-after" in r.headers:
        said["retry_after"] = int(r.headers["retry-after"])
    return said


async def item(c: httpx.AsyncClient, svc: Service, write: dict[str, Any]) -> dict[str, Any]:
    """A one-item batch's answer for that item."""
    r = await c.post("/scores/batch", json={"items": [write]}, headers=server(svc))
    assert r.status_code == 200, r.text
    [answer] = r.json()["results"]
    assert answer.pop("user_id") == write["user_id"]
    return dict(answer)


def refused(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer.pop("status") == "refused", answer
    return answer


async def test_out_of_range_is_refused_alike(service: Service, client: httpx.AsyncClient) -> None:
    user = uid("rr")
    await registered(client, user, score=10)
    one = single(await client.post("/score/add", json={"delta": MAX}, headers=player(service, user)),
                 422)
    batch = refused(await item(client, service, {"user_id": user, "delta": MAX}))
    assert one == batch == {"error": "score_out_of_range", "detail": one["detail"]}


async def test_reused_idempotency_key_is_refused_alike(
    service: Service, client: httpx.AsyncClient
) -> None:
    user = uid("rk")
    await registered(client, user, score=10)
    headers = {**player(service, user), "Idempotency-Key": "k1"}
    assert (await client.post("/score/add", json={"delta": 1}, headers=headers)).status_code == 200
    one = single(await client.post("/score/add", json={"delta": 2}, headers=headers), 422)
    # the key is the user's, whichever path used it first
    batch = refused(await item(client, service,
                               {"user_id": user, "delta": 2, "idempotency_key": "k1"}))
    assert one == batch == {"error": "idempotency_key_reused", "detail": one["detail"]}


def without_seconds(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with its wait left out: the bucket refills between two requests."""
    return {**answer, "retry_after": None,
            "detail": re.sub(r"\d+ s\b", "N s", answer["detail"])}


async def test_rate_limit_is_refused_alike(limited: Service, rl: httpx.AsyncClient) -> None:
    user = uid("rl")
    await registered(rl, user)
    for _ in range(5):  # the user's whole bucket
        assert (await rl.post("/score/add", json={"delta": 1},
                              headers=player(limited, user))).status_code == 200
    one = single(await rl.post("/score/add", json={"delta": 1}, headers=player(limited, user)),
                 429)
    batch = refused(await item(rl, limited, {"user_id": user, "delta": 1}))
    assert one["error"] == "rate_limited" and one["scope"] == "user"
    assert without_seconds(one) == without_seconds(batch)
    assert abs(one["retry_after"] - batch["retry_after"]) <= 1
    for answer in (one, batch):  # each detail names its own wait
        assert f"retry in {answer['retry_after']} s" in answer["detail"], answer


async def test_full_queue_is_refused_alike(
    limited: Service, rl: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    user = uid("rq")
    await registered(rl, user)
    admin = bearer(issue_token(limited.settings, "ops", "Ops", "GLOBAL", role="admin"))
    await wait_drained(redis, limited.settings)
    await rl.post("/admin/writers/pause", headers=admin)
    try:
        while await redis.xlen(Keys("rl").stream("EU")) < QUEUE_LIMIT:  # one write per user
            r = await rl.post("/score/update", json={"score": 1}, headers=player(limited, uid()))
            assert r.status_code == 200, r.text
        one = single(await rl.post("/score/update", json={"score": 1},
                                   headers=player(limited, user)), 429)
        batch = refused(await item(rl, limited, {"user_id": user, "score": 1}))
    finally:
        await rl.post("/admin/writers/resume", headers=admin)
    await wait_drained(redis, limited.settings)
    assert one == batch == {"error": "queue_full", "detail": one["detail"], "retry_after": 1}


async def test_warming_flags_are_alike(
    service: Service, client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    """While the board is rebuilt, an applied write has no rank and says so, on both paths."""
    one_user, batch_user = uid("rw"), uid("rw")
    await registered(client, one_user, score=1)
    await registered(client, batch_user, score=1)
    keys = Keys(service.settings.board)
    # what a rebuild in progress looks like to the write script (the lock keeps the board
    # guard from clearing the flag; both expire by themselves)
    await redis.set(keys.rebuild_lock, "test", px=5000)
    await redis.set(keys.warming, "test", px=5000)
    try:
        r = await client.post("/score/update", json={"score": 3},
                              headers=player(service, one_user))
        batch = await item(client, service, {"user_id": batch_user, "score": 3})
    finally:
        await redis.delete(keys.warming, keys.rebuild_lock)
    assert r.status_code == 200, r.text
    assert batch.pop("status") == "applied", batch
    one, entry = r.json(), batch["entry"]
    assert (one["rank"], one.get("warming"), one.get("global_pending")) == (None, True, None)
    assert {k: v for k, v in one.items() if k != "user_id" and k != "name"} == {
        k: v for k, v in entry.items() if k != "user_id" and k != "name"}
