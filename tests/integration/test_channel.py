"""The shard's direct channel (leaderboard/actors/channel.py) over real loopback sockets."""

from __future__ import annotations

import asyncio

import pytest

from leaderboard.actors.channel import (
    Address,
    ChannelClient,
    ChannelServer,
    Rows,
    ShardFailed,
    ShardUnreachable,
    channel_token,
)

TOKEN = channel_token("secret", "default", "EU")


async def echo_slowly(rows: Rows) -> Rows:
    """Answers each row doubled, later for the earlier rows: answers come back out of order."""
    await asyncio.sleep(0.05 / (1 + int(rows[0][0])))
    return [(n * 2,) for (n,) in rows]


async def started(handler=echo_slowly, token: bytes = TOKEN) -> ChannelServer:  # type: ignore[no-untyped-def]
    server = ChannelServer(handler, token)
    await server.start("127.0.0.1")
    return server


def client_of(*servers: ChannelServer, token: bytes = TOKEN) -> tuple[ChannelClient, list[int]]:
    """A client that resolves to the newest of ``servers`` (appended to as a test restarts)."""
    asked: list[int] = []
    pool = list(servers)

    async def resolve() -> Address:
        asked.append(1)
        return pool[-1].address

    client = ChannelClient(resolve, token)
    client.servers = pool  # type: ignore[attr-defined]
    return client, asked


async def test_concurrent_requests_get_their_own_answers_over_one_connection() -> None:
    server = await started()
    client, asked = client_of(server)
    answers = await asyncio.gather(*(client.call([(n,), (n + 100,)]) for n in range(20)))
    assert answers == [[(2 * n,), (2 * n + 200,)] for n in range(20)]
    assert len(asked) == 1  # one connection, found once
    client.close()
    server.close()


async def test_a_connection_without_the_token_is_not_heard() -> None:
    calls: list[Rows] = []

    async def record(rows: Rows) -> Rows:
        calls.append(rows)
        return rows

    server = await started(record)
    client, _ = client_of(server, token=channel_token("other-secret", "default", "EU"))
    with pytest.raises(ShardUnreachable):
        await asyncio.wait_for(client.call([(1,)]), 5)
    assert calls == []
    server.close()


async def test_a_lost_shard_fails_what_was_in_flight_and_the_restarted_one_is_found() -> None:
    hold = asyncio.Event()

    async def stuck(rows: Rows) -> Rows:
        await hold.wait()
        return rows

    first = await started(stuck)
    client, asked = client_of(first)
    call = asyncio.create_task(client.call([(1,)]))
    await asyncio.sleep(0.1)
    first.close()  # the actor died with the write on its way
    with pytest.raises(ShardUnreachable):
        await asyncio.wait_for(call, 5)
    second = await started()
    client.servers.append(second)  # type: ignore[attr-defined]
    assert await client.call([(3,)]) == [(6,)]
    assert len(asked) == 2  # asked the actor again after the loss
    hold.set()
    client.close()
    second.close()


async def test_nothing_listening_is_unreachable_not_a_hang() -> None:
    server = await started()
    server.close()
    await asyncio.sleep(0.05)
    client, _ = client_of(server)
    with pytest.raises(ShardUnreachable):
        await asyncio.wait_for(client.call([(1,)]), 5)


async def test_a_failing_handler_is_an_error_for_that_request_only() -> None:
    async def picky(rows: Rows) -> Rows:
        if rows[0][0] < 0:
            raise ValueError("a bug")
        return rows

    server = await started(picky)
    client, _ = client_of(server)
    with pytest.raises(ShardFailed, match="ValueError: a bug"):
        await client.call([(-1,)])
    assert await client.call([(5,)]) == [(5,)]
    client.close()
    server.close()
