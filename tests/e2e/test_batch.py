"""POST /scores/batch: trusted game servers send many writes at once; one answer per item."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from leaderboard.serve.auth import issue_token
from tests.e2e.conftest import Service, bearer, register, uid

MAX = 2**53 - 1


def server(svc: Service) -> dict[str, str]:
    return bearer(issue_token(svc.settings, "game-server", "Game server", "GLOBAL", role="server"))


async def test_batch_applies_each_item_and_answers_in_order(
    service: Service, client: httpx.AsyncClient
) -> None:
    eu, na, glob = uid("b"), uid("b"), uid("b")
    await register(client, eu, region="EU")
    await register(client, na, region="NA")
    await register(client, glob, region="GLOBAL", initialScore=100)
    items = [
        {"user_id": eu, "score": 10},
        {"user_id": na, "delta": 7},
        {"user_id": glob, "delta": -1, "idempotency_key": "k1"},
        {"user_id": "nobody-" + uid(), "score": 1},
        {"user_id": eu, "delta": MAX},  # 10 + MAX leaves the range
        {"user_id": glob, "delta": -1, "idempotency_key": "k1"},  # a retry: applied once
        {"user_id": eu, "delta": 5},
    ]
    r = await client.post("/scores/batch", json={"items": items}, headers=server(service))
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["user_id"] for x in res] == [i["user_id"] for i in items]
    assert [x["status"] for x in res] == ["applied", "applied", "applied", "refused", "refused",
                                          "applied", "applied"]
    assert res[0]["entry"]["score"] == 10 and res[0]["entry"]["region"] == "EU"
    assert res[1]["entry"]["score"] == 7
    assert res[2]["entry"]["score"] == 99 and res[5] == {**res[2], "replayed": True}
    assert res[3]["error"] == "unknown_user"
    assert res[4]["error"] == "score_out_of_range"
    assert res[6]["entry"]["score"] == 15  # items of one shard apply in order
    assert isinstance(res[6]["entry"]["rank"], int)
    rank = await client.get(f"/rank/{glob}")
    assert rank.json()["score"] == 99


@pytest.mark.parametrize("headers,status,error", [
    ({}, 401, "unauthorized"),
    ("player", 403, "forbidden"),
    ("admin", 403, "forbidden"),
])
async def test_batch_needs_a_server_token(
    service: Service, client: httpx.AsyncClient, headers: object, status: int, error: str
) -> None:
    if isinstance(headers, str):
        headers = bearer(issue_token(service.settings, "x", "X", "EU", role=headers))
    r = await client.post("/scores/batch", json={"items": [{"user_id": "x", "score": 1}]},
                          headers=headers)  # type: ignore[arg-type]
    assert r.status_code == status and r.json()["error"] == error


@pytest.mark.parametrize("body", [
    {"items": []},
    {"items": [{"user_id": "a", "score": 1}] * 1001},
    {"items": [{"user_id": "a", "score": 1, "delta": 2}]},
    {"items": [{"user_id": "a"}]},
    {"items": [{"user_id": "a", "score": 1.5}]},
    {"items": [{"user_id": "a", "delta": MAX + 1}]},
    {"items": [{"user_id": "bad id", "score": 1}]},
    {"items": [{"user_id": "a", "score": 1, "idempotency_key": "no spaces"}]},
    {"items": "nope"},
])
async def test_batch_rejects_invalid_bodies(
    service: Service, client: httpx.AsyncClient, body: object
) -> None:
    r = await client.post("/scores/batch", json=body, headers=server(service))
    assert r.status_code == 422 and r.json()["error"] == "validation_error", r.text


async def test_big_batch_across_shards_matches_single_writes(
    service: Service, client: httpx.AsyncClient
) -> None:
    regions = ["GLOBAL", "ASIA", "EU", "NA"]
    users = [uid("bb") for _ in range(40)]
    await asyncio.gather(*(register(client, u, region=regions[i % 4])
                           for i, u in enumerate(users)))
    rng = random.Random(5)
    expected: dict[str, int] = {}
    items = []
    for _ in range(1000):
        u = rng.choice(users)
        if rng.random() < 0.5:
            v = rng.randrange(100)
            items.append({"user_id": u, "score": v})
            expected[u] = v
        else:
            d = rng.randrange(-5, 6)
            items.append({"user_id": u, "delta": d})
            expected[u] = expected.get(u, 0) + d
    r = await client.post("/scores/batch", json={"items": items}, headers=server(service))
    assert r.status_code == 200
    assert all(x["status"] == "applied" for x in r.json()["results"])
    for u in users:
        got = await client.get(f"/rank/{u}")
        assert got.json()["score"] == expected[u]


async def test_limits_still_apply_per_user_in_a_batch(
    limited: Service, rl: httpx.AsyncClient
) -> None:
    user = uid("bl")
    reg = await rl.post("/auth/register", json={"user_id": user, "name": "B", "region": "EU",
                                               "password": "correct horse"},
                        headers={"X-Forwarded-For": f"127.9.{random.randrange(255)}.1"})
    assert reg.status_code == 201, reg.text
    items = [{"user_id": user, "delta": 1} for _ in range(7)]
    r = await rl.post("/scores/batch", json={"items": items}, headers=server(limited))
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["applied"] * 5 + ["refused"] * 2
    assert {(x["error"], x["scope"]) for x in res[5:]} == {("rate_limited", "user")}
    assert all(x["retry_after"] in (11, 12) for x in res[5:])
    assert res[4]["entry"]["score"] == 5
