"""Unit-test helpers: settings built from explicit values, not the suite's environment."""

from __future__ import annotations

import pytest

from leaderboard.settings import Settings

SECRET = "unit-test-secret-0123456789abcdef-xyz"  # > 32 bytes

# Every variable Settings/StoreSettings reads; cleared so each test states what it sets.
SETTINGS_ENV = [
    "JWT_SECRET", "JWT_TTL_SECONDS", "PASSWORD_SCRYPT_N", "REGIONS", "BOARD", "HOST", "PORT",
    "WRITER_POOL_SIZE", "WRITER_BATCH_SIZE", "WRITER_BATCH_WAIT_MS", "WRITER_CLAIM_IDLE_MS",
    "GATEWAY_REPLICAS", "RANKING_MIN_REPLICAS", "RANKING_MAX_REPLICAS",
    "SERVE_MAX_ONGOING_REQUESTS", "RAY_NAMESPACE", "LOCAL_RAY_CPUS", "STATE_DIR", "PLACEMENT_LABEL",
    "REDIS_URL", "DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE",
    "REDIS_SHARDS", "REGION_SPLITS", "METRICS_BOARDS", "METRICS_EXPORT_PORT", "GC_FREEZE",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def make_settings(clean_env: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def make(**kw: object) -> Settings:
        kw.setdefault("JWT_SECRET", SECRET)
        return Settings(**kw)  # type: ignore[arg-type]

    return make
