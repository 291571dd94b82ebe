"""The live hub on a real Redis: watchers of one view share its reads; announcements of a
burst (as the write scripts publish them, heard through a gateway's subscription) are
coalesced; every watcher ends on the last read; leaving frees everything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from leaderboard.changes import Change, message, parse
from leaderboard.serve.live import HEARTBEAT_TICK_S, MIN_GAP_S, LiveHub, ViewKey
from leaderboard.serve.ranking import ReadRequest
from leaderboard.serve.subscriber import Subscriber
from leaderboard.settings import Settings

CHANNEL = "lb:test-live:live"


class CountingReads:
    """A read function whose answers differ each time (a board that keeps changing)."""

    def __init__(self) -> None:
        self.requests: list[ReadRequest] = []

    async def __call__(self, request: ReadRequest) -> bytes | None:
        self.requests.append(request)
        return b'{"total":%d}' % len(self.requests)

    def of(self, region: str) -> int:
        return sum(1 for r in self.requests if r.region == region)


def listening(hub: LiveHub, settings: Settings) -> asyncio.Task[None]:
    """The gateway's subscription, feeding the hub (as ``serve/read_through.py`` does)."""
    sub = Subscriber(settings.redis_url, [CHANNEL], lambda _, data: hub.changed(parse(data)),
                     lambda: hub.changed(None))
    return asyncio.get_running_loop().create_task(sub.run())


async def subscribed(redis: aioredis.Redis) -> None:
    for _ in range(100):
        if (await redis.pubsub_numsub(CHANNEL))[0][1] > 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the hub did not subscribe")


def wrote(board: str, *boards: str) -> str:
    return message(Change(board, 1, boards, 1, 2, "someone"))


async def next_view(stream: AsyncIterator[bytes]) -> bytes:
    frame = await asyncio.wait_for(anext(stream), 5)
    while frame.startswith((b"retry", b":")):
        frame = await asyncio.wait_for(anext(stream), 5)
    return frame.split(b"data: ", 1)[1].strip()


async def test_watchers_share_reads_and_bursts_coalesce(
        redis: aioredis.Redis, settings: Settings) -> None:
    reads = CountingReads()
    hub = LiveHub(reads, lambda _: None, 10_000)
    listener = listening(hub, settings)
    eu = [hub.events(ViewKey("b1", "EU", 10), 30) for _ in range(300)]
    na = hub.events(ViewKey("b1", "NA", 10), 30)
    first = await asyncio.gather(*(next_view(s) for s in eu))
    await next_view(na)
    assert len(set(first)) == 1 and reads.of("EU") == 1  # 300 watchers, one read
    await subscribed(redis)
    await asyncio.sleep(3 * MIN_GAP_S)  # (subscribing, the hub reads every feed once more)
    eu_before, na_before = reads.of("EU"), reads.of("NA")

    burst_s = 1.0
    for _ in range(100):  # 100 announcements in a second
        await redis.publish(CHANNEL, wrote("b1", "EU", "GLOBAL"))
        await asyncio.sleep(burst_s / 100)
    await asyncio.sleep(3 * MIN_GAP_S)
    during = reads.of("EU") - eu_before
    assert 2 <= during <= burst_s / MIN_GAP_S + 2, during
    assert reads.of("NA") == na_before  # another region's announcements do not wake it

    last = await asyncio.gather(*(next_view(s) for s in eu))
    assert set(last) == {b'{"board":"b1","top":{"total":%d},"me":null}' % len(reads.requests)}

    for stream in [*eu, na]:
        await stream.aclose()
    assert hub.watchers == 0 and hub.feeds == {}
    listener.cancel()


async def test_global_views_follow_every_region(redis: aioredis.Redis, settings: Settings) -> None:
    reads = CountingReads()
    hub = LiveHub(reads, lambda _: None, 10)
    listener = listening(hub, settings)
    stream = hub.events(ViewKey("b2", "GLOBAL", 5, "u1"), 30)
    await next_view(stream)
    await subscribed(redis)
    await asyncio.sleep(3 * MIN_GAP_S)
    await next_view(stream)  # the read subscribing made
    reads.requests.clear()
    await redis.publish(CHANNEL, wrote("other", "EU", "GLOBAL"))
    await redis.publish(CHANNEL, wrote("b2", "NA", "GLOBAL"))
    body = await next_view(stream)
    kinds = sorted(r.kind for r in reads.requests)
    assert kinds == ["around", "top"]  # the view and its user part, once
    assert body.startswith(b'{"board":"b2","top":')
    await stream.aclose()
    listener.cancel()


async def test_many_watchers_pace_views_to_the_frame_budget(
        redis: aioredis.Redis, settings: Settings) -> None:
    """200 watchers and a budget of 200 frames a second: a view reads (and sends) about once a
    second, not ten times, under a steady stream of changes; the last event is still fresh."""
    reads = CountingReads()
    hub = LiveHub(reads, lambda _: None, 10_000, frames_per_s=200)
    listener = listening(hub, settings)
    streams = [hub.events(ViewKey("b2", "EU", 10), 30) for _ in range(200)]
    await asyncio.gather(*(next_view(s) for s in streams))
    assert hub.gap_s() == 1.0
    await subscribed(redis)
    await asyncio.sleep(1.2)
    before = reads.of("EU")
    for _ in range(100):  # 3 s of announcements, 33 a second
        await redis.publish(CHANNEL, wrote("b2", "EU", "GLOBAL"))
        await asyncio.sleep(0.03)
    await asyncio.sleep(1.2)
    during = reads.of("EU") - before
    assert 2 <= during <= 5, during  # ~3 s / 1 s gap, + the one after the burst (10x: ~30)
    last = await asyncio.gather(*(next_view(s) for s in streams))
    assert set(last) == {b'{"board":"b2","top":{"total":%d},"me":null}' % len(reads.requests)}
    for stream in streams:
        await stream.aclose()
    assert hub.gap_s() == MIN_GAP_S
    listener.cancel()


async def test_heartbeats_come_to_idle_streams_only(settings: Settings) -> None:
    """One heartbeat task for the hub: a stream that sent nothing for its heartbeat interval
    gets a comment (within a tick), a stream with a view to send gets the view instead."""
    reads = CountingReads()
    hub = LiveHub(reads, lambda _: None, 10)
    idle = hub.events(ViewKey("b3", "EU", 10), 1.0)
    await next_view(idle)
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(anext(idle), 3) == b": keep-alive\n\n"
    waited = asyncio.get_running_loop().time() - started
    assert 0.9 <= waited <= 1.0 + 2 * HEARTBEAT_TICK_S, waited

    busy = hub.events(ViewKey("b3", "NA", 10), 1.0)
    await next_view(busy)
    for _ in range(6):  # a change every 0.3 s: always something newer than a heartbeat
        hub.changed(Change("b3", 1, ("NA",), 1, 2, "someone"))
        frame = await asyncio.wait_for(anext(busy), 3)
        assert frame.startswith(b"id: "), frame
        await asyncio.sleep(0.3)
    for stream in (idle, busy):
        await stream.aclose()
    assert hub.watchers == 0
