"""Pushed updates over real HTTP: ``GET /boards/{board}/live`` (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Service, register, uid
from tests.e2e.live_client import Event, EventStream, live
from tests.e2e.test_boards import admin, board_id, create, submit


async def players(client: httpx.AsyncClient, bid: str, scores: list[int],
                  region: str = "EU") -> list[tuple[str, str]]:
    """Registered users with these scores on the board: (user_id, token) each."""
    out = []
    for score in scores:
        user = uid("lv")
        token = await register(client, user, region)
        assert (await submit(client, token, bid, score=score)).status_code == 200
        out.append((user, token))
    return out


async def fresh_top(client: httpx.AsyncClient, bid: str, limit: int = 10,
                    region: str = "GLOBAL") -> Any:
    r = await client.get(f"/boards/{bid}/top", params={"limit": limit, "region": region})
    assert r.status_code == 200, r.text
    return r.json()


async def new_board(client: httpx.AsyncClient, service: Service, **body: Any) -> str:
    bid = board_id()
    assert (await create(client, service, id=bid, **body)).status_code == 201
    return bid


async def test_first_event_is_the_view_now(client: httpx.AsyncClient, service: Service) -> None:
    bid = await new_board(client, service)
    users = await players(client, bid, [50, 40, 30, 20, 10])
    me = users[2][0]
    async with live(client, bid, limit=3, user_id=me) as stream:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        first = await stream.next()
    assert first.event == "view" and first.id
    assert first.data["board"] == bid
    assert first.data["top"] == await fresh_top(client, bid, 3)
    around = await client.get(f"/boards/{bid}/around/{me}", params={"range": 2})
    assert first.data["me"] == around.json()
    assert [e["rank"] for e in first.data["me"]["around"]] == [1, 2, 4, 5]


async def test_an_event_follows_a_write(client: httpx.AsyncClient, service: Service) -> None:
    bid = await new_board(client, service)
    [(_, token)] = await players(client, bid, [5])
    async with live(client, bid, region="EU") as stream:
        first = await stream.next()
        assert [e["score"] for e in first.data["top"]["entries"]] == [5]
        start = time.monotonic()
        assert (await submit(client, token, bid, score=77)).status_code == 200
        seen = await stream.until(lambda d: d["top"]["entries"][0]["score"] == 77, timeout=5)
        print(f"write answered -> event: {seen.at - start:.3f} s")
        assert seen.data["top"]["region"] == "EU"
        assert int(seen.id) > int(first.id)


async def test_refusals_before_the_stream(client: httpx.AsyncClient, service: Service) -> None:
    bid = await new_board(client, service)
    cases = [("no-such-board", {}, 404), (bid, {"region": "MARS"}, 422),
             (bid, {"limit": 0}, 422), (bid, {"limit": 101}, 422),
             (bid, {"user_id": "bad id!"}, 422), ("Bad!", {}, 422)]
    for board, params, status in cases:
        r = await client.get(f"/boards/{board}/live", params=params)
        assert r.status_code == status, (board, params, r.text)
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"error", "detail"}


async def collect(stream: EventStream, quiet_s: float, limit_s: float) -> list[Event]:
    """Events until none came for ``quiet_s`` (or ``limit_s`` passed)."""
    events: list[Event] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            events.append(await stream.next(quiet_s))
        except TimeoutError:
            break
    return events


async def test_bursts_are_coalesced_and_the_last_event_is_fresh(
        client: httpx.AsyncClient, service: Service) -> None:
    bid = await new_board(client, service, operator="incr")
    tokens = [await register(client, uid("lv"), region) for region in ("EU", "NA") * 4]
    async with live(client, bid, limit=5) as stream:
        await stream.next()

        async def writer(token: str) -> None:
            end = time.monotonic() + 3.0
            while time.monotonic() < end:
                r = await client.post(f"/boards/{bid}/scores", json={"delta": 1},
                                      headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text

        writes = asyncio.gather(*(writer(t) for t in tokens))
        events = await collect(stream, quiet_s=1.5, limit_s=20)
        await writes
        events += await collect(stream, quiet_s=1.5, limit_s=5)
    times = [e.at for e in events]
    # events leave >= 100 ms apart; 0.95 s windows leave room for arrival jitter only
    busiest = max(sum(1 for t in times if s <= t < s + 0.95) for s in times)
    print(f"{len(events)} events over the 3 s burst; busiest 0.95 s: {busiest}")
    assert len(events) >= 5  # the view did change all along
    assert busiest <= 10
    assert events[-1].data["top"] == await fresh_top(client, bid, 5)


async def test_last_event_id_resumes_with_a_fresh_view(client: httpx.AsyncClient,
                                                     service: Service) -> None:
    bid = await new_board(client, service)
    [(_, token)] = await players(client, bid, [1])
    async with live(client, bid) as stream:
        last = await stream.next()
    assert (await submit(client, token, bid, score=2)).status_code == 200
    async with live(client, bid, headers={"Last-Event-ID": last.id}) as stream:
        again = await stream.until(lambda d: d["top"]["entries"][0]["score"] == 2, timeout=5)
    assert again.data["top"] == await fresh_top(client, bid)


async def test_heartbeat_comments(client: httpx.AsyncClient, service: Service) -> None:
    bid = await new_board(client, service)
    async with live(client, bid) as stream:
        await stream.next()
        with_nothing_new = asyncio.create_task(stream.next(timeout=30))
        await asyncio.sleep(service.settings.live_heartbeat_s * 1.5 + 0.5)
        with_nothing_new.cancel()
    assert "keep-alive" in stream.comments


async def test_season_rollover_sends_the_new_empty_view(client: httpx.AsyncClient,
                                                        service: Service) -> None:
    bid = await new_board(client, service, reset=2)
    token = await register(client, uid("lv"))
    written = (await submit(client, token, bid, score=9)).json()["season"]
    async with live(client, bid) as stream:
        nxt = await stream.until(lambda d: d["top"]["season"] > written, timeout=6)
        after = await stream.until(lambda d: d["top"]["season"] > written + 1, timeout=6)
    assert nxt.data["top"]["season"] == written + 1
    assert nxt.data["top"]["entries"] == [] and nxt.data["top"]["total"] == 0
    assert after.data["top"]["season"] == written + 2  # and the next boundary too


async def live_stats(client: httpx.AsyncClient) -> dict[str, int]:
    return dict((await client.get("/health")).json()["live"])


async def test_a_client_leaving_frees_its_place(client: httpx.AsyncClient,
                                                service: Service) -> None:
    """Through HAProxy and Serve, a closed connection ends the stream on the replica."""
    bid = await new_board(client, service)
    before = (await live_stats(client))["watchers"]
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as other:
        async with live(other, bid, limit=3) as a, live(other, bid, limit=3) as b, \
                live(other, bid, limit=4, user_id="nobody") as c:
            for stream in (a, b, c):
                assert (await stream.next()).data["me"] is None
            stats = await live_stats(client)
            assert stats["watchers"] == before + 3 and stats["views"] >= 2
    deadline = time.monotonic() + 10
    while (await live_stats(client))["watchers"] != before:
        assert time.monotonic() < deadline, "closed streams still held"
        await asyncio.sleep(0.2)


async def test_a_deleted_board_ends_its_streams(client: httpx.AsyncClient,
                                                service: Service) -> None:
    bid = await new_board(client, service)
    async with live(client, bid) as stream:
        await stream.next()
        r = await client.delete(f"/boards/{bid}", headers=admin(service))
        assert r.status_code == 204
        gone = await stream.next(timeout=10)  # the feeds' own read comes within 5 s
        assert gone.event == "gone" and gone.data["error"] == "not_found"
        with pytest.raises(EOFError):
            await stream.next()


@pytest.fixture(scope="module")
def capped(service: Service) -> Iterator[Service]:
    """A small app whose gateway holds at most two streams."""
    from leaderboard.pipeline.db import ensure_database
    from tests.e2e.conftest import deploy, s_db, undeploy

    s = service.settings.model_copy(update={
        "board": "cap", "regions": "GLOBAL,EU", "writer_pool_size": 1,
        "live_max_watchers": 2, "pgdatabase": s_db(service, "cap")})
    asyncio.run(ensure_database(s))
    yield deploy(s, "capped", "/cap")
    undeploy(s, "capped")


async def test_a_full_replica_refuses_streams_not_requests(capped: Service) -> None:
    async with httpx.AsyncClient(base_url=capped.base_url, timeout=30) as c:
        async with live(c, "default") as a, live(c, "default", region="EU") as b:
            await a.next()
            await b.next()
            r = await c.get("/boards/default/live")
            assert r.status_code == 503 and r.json()["error"] == "unavailable"
            assert r.headers["retry-after"] == "1"
            assert (await c.get("/boards/default/top")).status_code == 200
        deadline = time.monotonic() + 10
        while True:  # the two places are free again once the streams are closed
            async with c.stream("GET", "/boards/default/live") as r:
                if r.status_code == 200:
                    break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)


async def test_the_page_knows_where_it_is_mounted(capped: Service) -> None:
    async with httpx.AsyncClient(base_url=capped.base_url, timeout=30) as c:
        page = await c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'src="/cap/static/app.js"' in page.text and 'data-regions="GLOBAL,EU"' in page.text
        script = await c.get("/static/app.js")
        assert script.status_code == 200 and "EventSource" in script.text
        assert (await c.get("/static/nothing.js")).status_code == 404
