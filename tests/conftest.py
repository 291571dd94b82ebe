"""Shared fixtures. Serve's environment is set here, before anything imports Ray."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("JWT_SECRET", "test-secret-not-for-production-0123456789abcdef")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("PGDATABASE", "leaderboard_test")
os.environ.setdefault("PASSWORD_SCRYPT_N", "1024")  # keep sign-ups cheap in tests
os.environ.setdefault("RATE_LIMITS_ENABLED", "false")  # on only where a test sets limits
os.environ.setdefault("WRITER_BATCH_WAIT_MS", "20")
os.environ.setdefault("LIVE_HEARTBEAT_S", "2")  # the live tests see a heartbeat soon
os.environ.setdefault("PORT", os.environ.get("TEST_HTTP_PORT", "18000"))
os.environ.setdefault("RAY_NAMESPACE", "leaderboard-test")
# metrics reach Ray's agent each second (5 s otherwise): tests/e2e/test_metrics.py waits less
os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")

from leaderboard.serve.ray_env import apply_serve_env
from leaderboard.settings import Settings

# a slow or busy machine is not a failing property: no per-example deadline, no "too slow"
hypothesis_settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("suite")

apply_serve_env(
    int(os.environ["PORT"]),
    stats_port=int(os.environ.get("TEST_HAPROXY_STATS_PORT", "18404")),
    metrics_port=int(os.environ.get("TEST_HAPROXY_METRICS_PORT", "19101")),
)
os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "0"
# HAProxy falls back to Serve's proxy actor while the gateway replica is not (yet) up; its
# fixed default port (8500) is taken by whichever Serve on this machine started first, so the
# suite's requests could be answered by another instance's app
for _var in ("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"):
    if _var not in os.environ:
        with socket.socket() as _s:
            _s.bind(("127.0.0.1", 0))
            os.environ[_var] = str(_s.getsockname()[1])


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings()  # type: ignore[call-arg]
    assert s.redis_url.rsplit("/", 1)[-1] not in ("", "0"), "tests must not use Redis index 0"
    assert s.database_name() != "leaderboard", "tests must not use the service's database"
    return s


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """The test Redis index, emptied before each test, with the board marked complete."""
    from leaderboard.keys import Keys

    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    await client.flushdb()
    await client.set(Keys(settings.board).epoch, "test")
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def pg_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    from leaderboard.pipeline.db import ensure_database

    await ensure_database(settings)
    pool = await asyncpg.create_pool(settings.dsn(), min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def pg(pg_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The test database with empty tables (and no board but ``default``)."""
    await pg_pool.execute("TRUNCATE leaderboard, credentials, season_archive, archive_entries, "
                          "drain_marks, erased_users CASCADE")
    await pg_pool.execute("DELETE FROM boards WHERE id <> 'default'")
    return pg_pool
