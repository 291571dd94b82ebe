"""Redis connections: one factory so every component connects the same way."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


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
