"""Redis connections: one factory so every component connects the same way."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisClock:
    """This host's estimate of a Redis instance's ``TIME`` in µs: the host clock plus the offset
    last seen in a reply (scripts answer the instance clock when they refuse a stale guess)."""

    def __init__(self) -> None:
        self.offset_us = 0

    def observe(self, redis_us: int) -> None:
        self.offset_us = redis_us - time.time_ns() // 1000

    def now_us(self) -> int:
        return time.time_ns() // 1000 + self.offset_us


def connect(url: str, *, retries: int = 2, max_connections: int = 64) -> aioredis.Redis:
    """A pooled asyncio client that decodes replies.

    ``retries`` resends a command after a dropped socket: safe for reads, never for
    score writes (a lost reply would apply the write twice), so writers pass 0.
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=retries),
    )


def pack(args: Sequence[str | int | bytes]) -> bytes:
    """One command in RESP. redis-py's own packer costs ~200 µs for a 25-argument script call
    (an encoder lookup and type checks per argument); this costs a few."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else b"%d" % arg if isinstance(arg, int) else arg
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


async def run_script_many(
    redis: aioredis.Redis, script: AsyncScript, calls: Sequence[tuple[Sequence[str], Sequence[str | int]]]
) -> list[Any]:
    """Run ``script`` once per ``(keys, args)``, in order, in one round trip; a call's error reply
    comes back as its exception. Calls refused with NOSCRIPT (Redis restarted or flushed its
    scripts) did not run: the script is loaded and they run again, in their order."""

    def packed(i: int) -> bytes:
        keys, args = calls[i]
        return pack(["EVALSHA", script.sha, len(keys), *keys, *args])

    replies = await _send(redis, [packed(i) for i in range(len(calls))])
    refused = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if refused:
        await redis.script_load(script.script)
        for i, reply in zip(refused, await _send(redis, [packed(i) for i in refused]), strict=True):
            replies[i] = reply
    return replies


async def _send(redis: aioredis.Redis, commands: list[bytes]) -> list[Any]:
    """Write packed commands on one pooled connection and read one reply each."""
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await conn.send_packed_command(b"".join(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:  # an error reply: the connection is still in step
                replies.append(exc)
        return replies
    except BaseException:
        await conn.disconnect()  # a half-read reply stream cannot be reused
        raise
    finally:
        await pool.release(conn)
