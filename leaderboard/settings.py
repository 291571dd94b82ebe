"""Settings: the only code that reads the environment. Read once at start, passed down."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_SCORE = 2**53 - 1
REGION_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,49}$")
GLOBAL = "GLOBAL"
MAX_SPLITS = 64
REDIS_SCHEMES = ("redis", "rediss", "unix")


def _pairs(variable: str, text: str, regions: list[str]) -> list[tuple[str, str]]:
    """``REGION=value,REGION=value`` as pairs; unknown or repeated regions are errors."""
    pairs: list[tuple[str, str]] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        region, sep, value = item.partition("=")
        region, value = region.strip().upper(), value.strip()
        if not sep or not value:
            raise ValueError(f"{variable}: {item!r} is not REGION=value")
        if region not in regions:
            raise ValueError(f"{variable}: unknown region {region!r}; REGIONS are {regions}")
        if region in (r for r, _ in pairs):
            raise ValueError(f"{variable}: region {region} is listed twice")
        pairs.append((region, value))
    return pairs


def check_redis_url(variable: str, url: str) -> str:
    """A usable Redis URL (redis://host[:port][/db], rediss://..., unix:///path), else an error."""
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        raise ValueError(f"{variable}: {url!r} has an invalid port") from None
    db = parts.path.lstrip("/")
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"{variable}: {url!r} is not a redis://, rediss:// or unix:// URL")
    if parts.scheme != "unix" and (not parts.hostname or (db and not db.isdigit())):
        raise ValueError(f"{variable}: {url!r} needs a host and an optional numeric database")
    return url


def parse_shard_map(text: str, regions: list[str]) -> dict[str, str]:
    """``REDIS_SHARDS``: region -> Redis URL; GLOBAL always stays on ``REDIS_URL``."""
    out: dict[str, str] = {}
    for region, url in _pairs("REDIS_SHARDS", text, regions):
        if region == GLOBAL:
            raise ValueError("REDIS_SHARDS: GLOBAL always lives on REDIS_URL; do not map it")
        out[region] = check_redis_url("REDIS_SHARDS", url)
    return out


def parse_splits(text: str, regions: list[str]) -> dict[str, int]:
    """``REGION_SPLITS``: region -> number of shards its users are hashed over (1: no split)."""
    out: dict[str, int] = {}
    for region, value in _pairs("REGION_SPLITS", text, regions):
        if not value.isdigit() or not 1 <= int(value) <= MAX_SPLITS:
            raise ValueError(f"REGION_SPLITS: {region}={value!r}: the count must be 1-{MAX_SPLITS}")
        out[region] = int(value)
    return out


METRICS_BOARD_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # a board id (boards.BOARD_ID)
MAX_METRICS_BOARDS = 20


def parse_metrics_boards(text: str) -> tuple[str, ...]:
    """``METRICS_BOARDS``: the board ids that get a ``board`` label of their own (the others
    are counted together as ``_other``); at most ``MAX_METRICS_BOARDS``, so the label stays
    bounded whatever boards are created."""
    ids = [b.strip() for b in text.split(",") if b.strip()]
    bad = [b for b in ids if not METRICS_BOARD_RE.match(b)]
    if bad:
        raise ValueError(f"METRICS_BOARDS: {bad} are not board ids")
    if len(set(ids)) > MAX_METRICS_BOARDS:
        raise ValueError(f"METRICS_BOARDS: at most {MAX_METRICS_BOARDS} boards (label values)")
    return tuple(dict.fromkeys(ids))


LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled continuously at ``per_us`` tokens per µs."""

    capacity: int = 0
    per_us: float = 0.0

    @classmethod
    def per_window(cls, count: int, window_s: float) -> Bucket:
        return cls(count, count / (window_s * 1e6)) if count > 0 else cls()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def args(self) -> list[str | int]:
        """As script arguments (capacity, refill per µs)."""
        return [self.capacity, repr(self.per_us)]


@dataclass(frozen=True)
class Limits:
    """Every admission limit; a zero capacity or length means that limit is off."""

    user: Bucket = Bucket()
    region: Bucket = Bucket()
    queue_length: int = 0
    auth: Bucket = Bucket()
    auth_global: Bucket = Bucket()


class StoreSettings(BaseSettings):
    """Where Redis and Postgres live and what they hold (all the operations scripts need)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    pghost: str = Field("127.0.0.1", alias="PGHOST")
    pgport: int = Field(5432, alias="PGPORT")
    pguser: str = Field(default_factory=getpass.getuser, alias="PGUSER")
    pgpassword: SecretStr | None = Field(None, alias="PGPASSWORD")
    pgdatabase: str = Field("leaderboard", alias="PGDATABASE")
    regions: str = Field("GLOBAL,ASIA,EU,NA", alias="REGIONS")
    board: str = Field("default", pattern=r"^[a-z0-9_-]{1,32}$", alias="BOARD")
    state_dir: str = Field(".data", alias="STATE_DIR")
    redis_shards: str = Field("", alias="REDIS_SHARDS")
    region_splits: str = Field("", alias="REGION_SPLITS")

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
    def _shards_valid(self) -> StoreSettings:
        check_redis_url("REDIS_URL", self.redis_url)
        self.shard_map()
        self.splits()
        return self

    @property
    def region_list(self) -> list[str]:
        """Regions in configured order; GLOBAL always first."""
        return self.regions.split(",")

    def shard_map(self) -> dict[str, str]:
        """Regions mapped to a Redis other than REDIS_URL (``REDIS_SHARDS``)."""
        return parse_shard_map(self.redis_shards, self.region_list)

    def splits(self) -> dict[str, int]:
        """Regions whose users are hashed over several shards (``REGION_SPLITS``)."""
        return parse_splits(self.region_splits, self.region_list)

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

    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, ge=1, le=65535, alias="PORT")

    writer_pool_size: int = Field(2, ge=1, le=64, alias="WRITER_POOL_SIZE")
    writer_batch_size: int = Field(1000, ge=1, le=10000, alias="WRITER_BATCH_SIZE")
    writer_batch_wait_ms: int = Field(50, ge=1, le=10000, alias="WRITER_BATCH_WAIT_MS")
    writer_linger_ms: int = Field(30, ge=0, le=1000, alias="WRITER_LINGER_MS")
    writer_claim_idle_ms: int = Field(30000, ge=100, alias="WRITER_CLAIM_IDLE_MS")
    writer_max_deliveries: int = Field(5, ge=1, alias="WRITER_MAX_DELIVERIES")

    rate_limits_enabled: bool = Field(True, alias="RATE_LIMITS_ENABLED")
    user_rate_limit_count: int = Field(5, ge=0, alias="USER_RATE_LIMIT_COUNT")
    user_rate_limit_window: float = Field(60.0, gt=0, alias="USER_RATE_LIMIT_WINDOW")
    region_rate_limit_per_sec: int = Field(20000, ge=0, alias="REGION_RATE_LIMIT_PER_SEC")
    queue_reject_length: int = Field(100000, ge=0, alias="QUEUE_REJECT_LENGTH")
    auth_rate_limit_count: int = Field(10, ge=0, alias="AUTH_RATE_LIMIT_COUNT")
    auth_rate_limit_window: float = Field(60.0, gt=0, alias="AUTH_RATE_LIMIT_WINDOW")
    auth_rate_limit_global_per_sec: int = Field(100, ge=0, alias="AUTH_RATE_LIMIT_GLOBAL_PER_SEC")

    idempotency_ttl_seconds: int = Field(86400, ge=1, alias="IDEMPOTENCY_TTL_SECONDS")

    batch_max_size: int = Field(256, ge=1, le=10000, alias="BATCH_MAX_SIZE")
    batch_max_inflight: int = Field(1, ge=1, le=64, alias="BATCH_MAX_INFLIGHT")
    shard_channel: Literal["direct", "ray"] = Field("direct", alias="SHARD_CHANNEL")
    shard_max_inflight: int = Field(2, ge=1, le=64, alias="SHARD_MAX_INFLIGHT")
    batch_max_wait_ms: float = Field(0.0, ge=0, le=1000, alias="BATCH_MAX_WAIT_MS")
    gc_freeze: bool = Field(True, alias="GC_FREEZE")  # leaderboard/heap.py

    ray_namespace: str = Field("leaderboard", alias="RAY_NAMESPACE")
    local_ray_cpus: int = Field(8, ge=1, alias="LOCAL_RAY_CPUS")
    placement_label: str = Field("region", alias="PLACEMENT_LABEL")

    live_heartbeat_s: float = Field(15.0, gt=0, le=300, alias="LIVE_HEARTBEAT_S")
    live_max_watchers: int = Field(3000, ge=0, alias="LIVE_MAX_WATCHERS")  # per gateway replica
    # SSE frames a gateway replica sends a second at most, over all its streams: views are
    # paced below 10 events a second once their watchers would exceed it (docs/live.md)
    live_frames_per_s: int = Field(2000, ge=10, le=1_000_000, alias="LIVE_FRAMES_PER_S")

    metrics_boards: str = Field("default", alias="METRICS_BOARDS")
    metrics_export_port: int = Field(8090, ge=1, le=65535, alias="METRICS_EXPORT_PORT")
    read_cache_size: int = Field(10_000, ge=0, le=1_000_000, alias="READ_CACHE_SIZE")  # answers

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

    @field_validator("metrics_boards")
    @classmethod
    def _metrics_boards_valid(cls, v: str) -> str:
        parse_metrics_boards(v)
        return v

    @property
    def metrics_board_list(self) -> tuple[str, ...]:
        return parse_metrics_boards(self.metrics_boards)

    @field_validator("placement_label")
    @classmethod
    def _label_key_valid(cls, v: str) -> str:
        prefix, slash, name = v.rpartition("/")
        parts = prefix.split(".") if slash else []
        if v and not (LABEL_NAME_RE.match(name) and len(prefix) <= 253
                      and all(LABEL_NAME_RE.match(p) for p in parts)):
            raise ValueError(
                "PLACEMENT_LABEL must be a Ray node label key (e.g. region, or "
                "example.com/region), or empty to place actors anywhere"
            )
        return v

    @field_validator("password_scrypt_n")
    @classmethod
    def _scrypt_n_power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("PASSWORD_SCRYPT_N must be a power of two (scrypt's cost parameter)")
        return v

    def limits(self) -> Limits:
        """The limits in force (all zero when RATE_LIMITS_ENABLED is false)."""
        if not self.rate_limits_enabled:
            return Limits()
        return Limits(
            user=Bucket.per_window(self.user_rate_limit_count, self.user_rate_limit_window),
            region=Bucket.per_window(self.region_rate_limit_per_sec, 1.0),
            queue_length=self.queue_reject_length,
            auth=Bucket.per_window(self.auth_rate_limit_count, self.auth_rate_limit_window),
            auth_global=Bucket.per_window(self.auth_rate_limit_global_per_sec, 1.0),
        )
