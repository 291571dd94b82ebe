"""Reads served from the gateway's cache over real HTTP: a client that writes and at once reads
its top page, its rank and its neighbourhood sees its own acknowledged write, every time, while
reads no write changed come from the cache (docs/performance.md, "Reads from the gateway's
cache"). The faults app runs the same check with its cache's subscription slowed down
(``tests/e2e/test_faults.py``)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx

from leaderboard.serve.auth import issue_token
from leaderboard.settings import Settings
from tests.e2e.conftest import Service, bearer, uid

BASE = 2**52  # above anything the other tests write: these users hold the top of GLOBAL


async def cache_stats(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get("/health")).json()["read_cache"])


async def own_writes_then_reads(client: httpx.AsyncClient, settings: Settings, rounds: int,
                                writers: int = 6) -> int:
    """``writers`` clients each write a new top score and at once read it back through top,
    rank and around; every read must show the write. Returns the reads checked."""
    counter = itertools.count(1)
    checked = 0

    async def one(region: str) -> None:
        nonlocal checked
        me = uid("rc")
        headers = bearer(issue_token(settings, me, f"N {me}", region))
        for _ in range(rounds):
            score = BASE + next(counter)
            r = await client.post("/score/update", json={"score": score}, headers=headers)
            assert r.status_code == 200, r.text
            top, rank, around = await asyncio.gather(
                client.get("/top", params={"region": "GLOBAL", "limit": 3 * writers}),
                client.get(f"/rank/{me}", params={"region": region}),
                client.get(f"/around/{me}", params={"region": "GLOBAL", "range": 2}))
            mine = [e["score"] for e in top.json()["entries"] if e["user_id"] == me]
            assert mine == [score], (me, score, top.json())
            assert rank.json()["score"] == score, rank.json()
            assert around.json()["self"]["score"] == score, around.json()
            checked += 3

    await asyncio.gather(*(one(region) for region in ["EU", "NA"] * (writers // 2)))
    return checked


async def test_each_read_shows_the_readers_own_acknowledged_write(
        service: Service, client: httpx.AsyncClient) -> None:
    before = await cache_stats(client)
    assert await own_writes_then_reads(client, service.settings, rounds=25) == 6 * 25 * 3
    # a region no one writes to: its page comes from the cache after the first read
    quiet = [await client.get("/top", params={"region": "ASIA", "limit": 7}) for _ in range(5)]
    assert len({r.content for r in quiet}) == 1
    after = await cache_stats(client)
    assert after["subscribed"] and after["hits"] - before["hits"] >= 4
