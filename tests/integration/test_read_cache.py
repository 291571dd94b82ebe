"""The read cache on a real Redis: the write scripts announce every write, the barrier sees
every announcement published before it (even through a slow connection), a lost subscription
drops the cache, and reads through it reflect each acknowledged write."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.changes import Change, parse
from leaderboard.keys import Keys
from leaderboard.serve.ranking import Answer, Ranker, ReadRequest
from leaderboard.serve.read_through import ReadThrough
from leaderboard.serve.subscriber import NotSubscribed, Subscriber
from leaderboard.settings import Settings
from leaderboard.shards import Topology
from tests.e2e.servers import OwnRedis

DELAY_S = 0.05


class SlowProxy:
    """A TCP proxy to Redis whose replies to the client arrive ``delay`` seconds late (in
    order); ``cut()`` closes every connection it carries."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, db: str) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, wait: float) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if wait:
                        await asyncio.sleep(wait)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (pump(reader, up_writer, 0), pump(up_reader, writer, self.delay)):
            t = asyncio.get_running_loop().create_task(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        for w in self._writers:
            w.close()
        self._writers.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
def ns(settings: Settings) -> Settings:
    """A namespace (and pub/sub channel) no one else uses: announcements of other runs on this
    Redis server would only drop answers, but this module counts what survives."""
    return settings.model_copy(update={"board": f"rc{uuid.uuid4().hex[:8]}"})


@pytest.fixture
async def complete(ns: Settings, redis: aioredis.Redis) -> None:
    await redis.set(Keys(ns.board).epoch, "test")


@pytest.fixture
async def slow(ns: Settings) -> AsyncIterator[SlowProxy]:
    target = aioredis.Redis.from_url(ns.redis_url).connection_pool.connection_kwargs
    proxy = SlowProxy((target["host"], target["port"]), DELAY_S)
    await proxy.start()
    yield proxy
    await proxy.close()


async def heard(channel_url: str, channel: str) -> tuple[Subscriber, list[bytes],
                                                         asyncio.Task[None]]:
    got: list[bytes] = []
    sub = Subscriber(channel_url, [channel], lambda _, data: got.append(data), lambda: None)
    task = asyncio.get_running_loop().create_task(sub.run())
    await until(lambda: sub.ready)
    return sub, got, task


async def until(check: object, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def write(user: str, value: int, region: str = "EU", key: str | None = None) -> WriteCommand:
    return WriteCommand(user, f"Name {user}", region, "set", value, key)


async def test_each_applied_write_announces_itself_from_its_script(
        ns: Settings, complete: None) -> None:
    sub, got, task = await heard(ns.redis_url, Keys(ns.board).live)
    shard, glob = RegionShard(ns, "EU"), RegionShard(ns, "GLOBAL")
    try:
        await shard.write(write("ann", 10))
        await shard.write(write("ann", 25, key="k1"))
        await shard.write(write("ann", 25, key="k1"))  # a replay: nothing changed
        await shard.write(write("ann", 25))  # same score: the entry is written again
        await glob.write(write("gus", -3, region="GLOBAL"))
        await sub.barrier()
        assert [parse(m) for m in got] == [
            Change("default", 1, ("EU", "GLOBAL"), None, 10, "ann"),
            Change("default", 1, ("EU", "GLOBAL"), 10, 25, "ann"),
            Change("default", 1, ("EU", "GLOBAL"), 25, 25, "ann"),
            Change("default", 1, ("GLOBAL",), None, -3, "gus"),
        ]
    finally:
        task.cancel()


async def test_a_region_on_another_instance_announces_there_and_its_fold_on_global(
        ns: Settings, complete: None, second: OwnRedis) -> None:
    sharded = ns.model_copy(update={"redis_shards": f"EU={second.url}"})
    other = aioredis.Redis.from_url(second.url)
    await other.set(Keys(ns.board).epoch, "test")
    channel = Keys(ns.board).live
    main_sub, on_main, t1 = await heard(ns.redis_url, channel)
    region_sub, on_region, t2 = await heard(second.url, channel)
    try:
        await RegionShard(sharded, "EU").write(write("eve", 7))
        await asyncio.gather(main_sub.barrier(), region_sub.barrier())
        assert [parse(m) for m in on_region] == [Change("default", 1, ("EU",), None, 7, "eve")]
        assert [parse(m) for m in on_main] == [Change("default", 1, ("GLOBAL",), None, 7, "eve")]
    finally:
        t1.cancel()
        t2.cancel()
        await other.flushdb()
        await other.aclose()


async def test_an_announcement_published_before_the_barrier_is_always_seen(
        ns: Settings, redis: aioredis.Redis, slow: SlowProxy) -> None:
    channel = Keys(ns.board).live
    sub, got, task = await heard(slow.url("0"), channel)
    try:
        for i in range(10):
            await redis.publish(channel, f"m{i}")
            assert got[-1:] != [f"m{i}".encode()]  # still on its way (the proxy is slow) ...
            await sub.barrier()
            assert got[-1] == f"m{i}".encode()  # ... and handled once the barrier passed
        waits = [sub.barrier() for _ in range(50)]  # asked in one turn: one PING for all
        await asyncio.gather(*waits)
    finally:
        task.cancel()


class Counted:
    """A ranking replica stand-in that answers a fixed top page and counts the reads."""

    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self, request: ReadRequest) -> Answer:
        self.sent += 1
        return b'{"entries":[{"score":%d}],"total":1}' % self.sent


async def test_losing_the_subscription_drops_the_cache_and_bypasses_it_until_back(
        ns: Settings, redis: aioredis.Redis, slow: SlowProxy) -> None:
    topology = replace(Topology.of(ns), global_url=slow.url("0"),
                       instance={r: slow.url("0") for r in ns.region_list})
    ranker = Counted()
    reads = ReadThrough(topology, Keys(ns.board), 100, ranker, lambda _: None)
    reads.start()
    top = ReadRequest("top", "EU", 1, "")
    sub = reads.subscribers[slow.url("0")]
    try:
        await until(lambda: sub.ready)
        first = await reads.read(top)
        assert await reads.read(top) == first and ranker.sent == 1  # the second from the cache
        slow.cut()
        await until(lambda: not sub.ready)
        assert len(reads.cache) == 0
        with pytest.raises(NotSubscribed):
            sub.barrier()
        assert await reads.read(top) != first and ranker.sent == 2  # bypassed, not kept:
        assert len(reads.cache) == 0  # what it would miss while down could change it
        await until(lambda: sub.ready)  # subscribed again
        again = await reads.read(top)
        assert await reads.read(top) == again and ranker.sent == 3
    finally:
        for task in reads._tasks:
            task.cancel()


async def test_reads_through_the_cache_reflect_every_acknowledged_write(
        ns: Settings, complete: None, slow: SlowProxy, pg_pool: object) -> None:
    """Writes and reads one after the other, the cache's subscription 50 ms late: a read after a
    write's answer always shows it (it waits for the announcement rather than serving a stale
    answer), and reads no write could have changed come from the cache."""
    ranker = Ranker(ns)
    db = ns.redis_url.rsplit("/", 1)[1]
    topology = replace(Topology.of(ns), global_url=slow.url(db),
                       instance={r: slow.url(db) for r in ns.region_list})

    async def send(request: ReadRequest) -> Answer:
        return (await ranker.read_many([request]))[0]

    reads = ReadThrough(topology, Keys(ns.board), 1000, send, lambda _: None)
    reads.start()
    shards = {r: RegionShard(ns, r) for r in ("EU", "NA")}
    rng = random.Random(7)
    users = [(f"p{i}", rng.choice(["EU", "NA"])) for i in range(12)]
    try:
        await until(lambda: all(s.ready for s in reads.subscribers.values()))
        for user, region in users:
            await shards[region].write(write(user, rng.randrange(100)))
        views = [ReadRequest("top", r, 5, "") for r in ("EU", "GLOBAL")] + [
            ReadRequest(kind, "GLOBAL", 2 if kind == "around" else 0, u)
            for u, _ in users[:4] for kind in ("rank", "around")]
        for _ in range(60):
            user, region = rng.choice(users)
            await shards[region].write(write(user, rng.randrange(100)))
            got = await asyncio.gather(*(reads.read(v) for v in views))  # one barrier for all
            assert got == [await send(v) for v in views]
        assert reads.cache.hits > 0
    finally:
        for task in [*reads._tasks, ranker._boards_task]:
            if task is not None:
                task.cancel()
