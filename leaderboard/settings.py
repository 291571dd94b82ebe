"""Settings: the only code that reads the environment. Read once at start, passed down."""

from __future__ import annotations

import getpass
import re
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_SCORE = 2**53 - 1
REGION_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,49}$")
GLOBAL = "GLOBAL"


class StoreSettings(BaseSettings):
    """Where Redis and Postgres live (all that scripts/services needs)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    pghost: str = Field("127.0.0.1", alias="PGHOST")
    pgport: int = Field(5432, alias="PGPORT")
    pguser: str = Field(default_factory=getpass.getuser, alias="PGUSER")
    pgpassword: SecretStr | None = Field(None, alias="PGPASSWORD")
    pgdatabase: str = Field("leaderboard", alias="PGDATABASE")

    def dsn(self, database: str | None = None) -> str:
        """Postgres DSN: DATABASE_URL if set, else built from the libpq variables."""
        if self.database_url and database is None:
            return self.database_url
        if self.database_url:
            parts = urlsplit(self.database_url)
            return urlunsplit(parts._replace(path=f"/{database}"))
        auth = quote(self.pguser, safe="")
        if self.pgpassword is not None:
            auth += ":" + quote(self.pgpassword.get_secret_value(), safe="")
        db = database or self.pgdatabase
        return f"postgresql://{auth}@{self.pghost}:{self.pgport}/{db}"

    def database_name(self) -> str:
        """The database the service uses (from DATABASE_URL or PGDATABASE)."""
        if self.database_url:
            return urlsplit(self.database_url).path.lstrip("/") or self.pguser
        return self.pgdatabase


class Settings(StoreSettings):
    """Every knob of the service; see the README's configuration table."""

    jwt_secret: SecretStr = Field(alias="JWT_SECRET")
    jwt_ttl_seconds: int = Field(3600, ge=60, alias="JWT_TTL_SECONDS")
    password_scrypt_n: int = Field(16384, ge=2, le=2**20, alias="PASSWORD_SCRYPT_N")

    regions: str = Field("GLOBAL,ASIA,EU,NA", alias="REGIONS")
    board: str = Field("default", pattern=r"^[a-z0-9_-]{1,32}$", alias="BOARD")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, ge=1, le=65535, alias="PORT")

    writer_pool_size: int = Field(2, ge=1, le=64, alias="WRITER_POOL_SIZE")
    writer_batch_size: int = Field(1000, ge=1, le=10000, alias="WRITER_BATCH_SIZE")
    writer_batch_wait_ms: int = Field(50, ge=1, le=10000, alias="WRITER_BATCH_WAIT_MS")
    writer_claim_idle_ms: int = Field(30000, ge=100, alias="WRITER_CLAIM_IDLE_MS")

    gateway_replicas: int = Field(1, ge=1, alias="GATEWAY_REPLICAS")
    ranking_min_replicas: int = Field(1, ge=1, alias="RANKING_MIN_REPLICAS")
    ranking_max_replicas: int = Field(2, ge=1, alias="RANKING_MAX_REPLICAS")
    max_ongoing_requests: int = Field(1000, ge=1, alias="SERVE_MAX_ONGOING_REQUESTS")
    ray_namespace: str = Field("leaderboard", alias="RAY_NAMESPACE")
    local_ray_cpus: int = Field(8, ge=1, alias="LOCAL_RAY_CPUS")
    state_dir: str = Field(".data", alias="STATE_DIR")

    @field_validator("jwt_secret")
    @classmethod
    def _secret_long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value().encode()) < 32:
            raise ValueError(
                "JWT_SECRET must be at least 32 bytes (HS256 keys shorter than the hash are "
                "guessable); generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'"
            )
        return v

    @field_validator("password_scrypt_n")
    @classmethod
    def _scrypt_n_power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("PASSWORD_SCRYPT_N must be a power of two (scrypt's cost parameter)")
        return v

    @field_validator("regions")
    @classmethod
    def _regions_valid(cls, v: str) -> str:
        names = [r.strip().upper() for r in v.split(",") if r.strip()]
        bad = [r for r in names if not REGION_RE.match(r)]
        if bad:
            raise ValueError(f"REGIONS has invalid names: {bad}")
        if len(set(names)) != len(names):
            raise ValueError("REGIONS lists a region twice")
        return ",".join([GLOBAL, *(n for n in names if n != GLOBAL)])

    @model_validator(mode="after")
    def _replicas_ordered(self) -> Settings:
        if self.ranking_max_replicas < self.ranking_min_replicas:
            raise ValueError("RANKING_MAX_REPLICAS must be >= RANKING_MIN_REPLICAS")
        return self

    @property
    def region_list(self) -> list[str]:
        """Regions in configured order; GLOBAL always first."""
        return self.regions.split(",")
