"""Gateway: the HTTP ingress (validation, auth, routing). Writes go to shard actors, reads to Ranker."""

# no "from __future__ import annotations": Serve's class-based view needs real annotations

import asyncio
import logging
import math
from typing import Annotated, Any

import asyncpg
from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.exceptions import RayError

from leaderboard.actors.router import shard_for
from leaderboard.actors.shard import WriteCommand, WriteMode, WriteResult
from leaderboard.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    KeyReused,
    LeaderboardError,
    NotFound,
    QueueFull,
    RateLimited,
    ScoreOutOfRange,
    Unauthorized,
    Unavailable,
    Warming,
)
from leaderboard.fold import FoldLag, InstanceHealth, oldest_event_ages
from leaderboard.keys import TAKE_TOKENS, Keys
from leaderboard.models import (
    AroundResponse,
    BatchRequest,
    Claims,
    LoginRequest,
    RankEntry,
    RegisterRequest,
    RegisterResponse,
    ScoreAdd,
    ScoreCreate,
    ScoreUpdate,
    TokenResponse,
    TopResponse,
    UserPublic,
)
from leaderboard.pipeline.db import create_pool
from leaderboard.redis_client import REDIS_DOWN, connect
from leaderboard.serve import auth, http_errors
from leaderboard.serve.batching import MicroBatcher
from leaderboard.serve.ranking import ReadRequest, encode
from leaderboard.settings import GLOBAL, Settings
from leaderboard.shards import Topology, redacted

log = logging.getLogger(__name__)

api = FastAPI(
    title="Leaderboard",
    version="0.1.0",
    description="Exact real-time ranks (Redis) with a durable record (Postgres), on Ray Serve.",
)
http_errors.install(api)

UserIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
RegionQuery = Annotated[str, Query(min_length=1, max_length=50)]
AuthHeader = Annotated[str | None, Header()]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$"),
]


PROFILE_CACHE_SIZE = 100_000
_REFUSALS = {
    "exists": "the entry already exists",
    "out_of_range": "the resulting score would be outside +-(2^53 - 1)",
    "queue_full": "the shard's backlog is full",
    "key_reused": "this idempotency key was used for a different request",
    "warming": "the board is being rebuilt; retry in a second",
    "unavailable": "Redis or the shard is unreachable; retry",
}


def batch_answer(cmd: WriteCommand, result: WriteResult) -> dict[str, Any]:
    """One item's answer in a batch: the entry when applied, or why not."""
    if result.status in ("ok", "replay"):
        entry: dict[str, Any] = {"rank": result.rank or None, "user_id": cmd.user_id,
                                 "name": cmd.name, "region": cmd.region, "score": result.score}
        answer: dict[str, Any] = {"user_id": cmd.user_id, "status": "applied", "entry": entry}
        if result.status == "replay":
            answer["replayed"] = True
        return answer
    refused: dict[str, Any] = {"user_id": cmd.user_id, "status": "refused"}
    if result.status == "rate_limited":
        return {**refused, "error": "rate_limited", "scope": result.scope,
                "retry_after": max(1, math.ceil(result.retry_after_us / 1e6))}
    code = "score_out_of_range" if result.status == "out_of_range" else result.status
    return {**refused, "error": code, "detail": _REFUSALS.get(result.status, result.status)}


def client_address(request: Request) -> str:
    """The caller's address as uvicorn resolved it (X-Forwarded-For from a trusted proxy)."""
    return request.client.host if request.client else "unknown"


def json_response(body: Any, status: int = 200) -> Response:
    """Serialize once, without FastAPI's response-model validation (the shapes are ours)."""
    return Response(encode(body), status, media_type="application/json")


def json_body(body: bytes | None) -> Response:
    """A JSON body encoded elsewhere (the ranking replica)."""
    return Response(body, 200, media_type="application/json")


@serve.ingress(api)
class Gateway:
    """Ingress deployment body: FastAPI routes on ``api``, bound where the class is defined."""

    def __init__(
        self, settings: Settings, ranker: Any, shards: dict[str, Any], writers: list[Any],
        ranking_replicas: int = 1,
    ) -> None:
        self._settings = settings
        self._ranker = ranker
        self._shards = shards
        self._writers = writers
        size, wait = settings.batch_max_size, settings.batch_max_wait_ms / 1000
        self._topology = Topology.of(settings)
        self._shard_batchers = {
            shard: MicroBatcher(self._shard_sender(handle), max_size=size, max_wait_s=wait,
                                max_inflight=settings.batch_max_inflight)
            for shard, handle in shards.items()
        }
        # reads may spread over every ranking replica
        inflight = settings.batch_max_inflight * ranking_replicas
        self._reads: MicroBatcher[ReadRequest, bytes | None] = MicroBatcher(
            self._read_sender, max_size=size, max_wait_s=wait, max_inflight=inflight)
        self._limits = settings.limits()
        self._regions = set(settings.region_list)
        self._keys = Keys(settings.board)
        self._redis = connect(settings.redis_url)
        self._instances = {url: self._redis if url == settings.redis_url else connect(url)
                           for url in self._topology.urls()}
        self._take_tokens = self._redis.register_script(TAKE_TOKENS)
        self._pg: asyncpg.Pool | None = None
        self._pg_lock = asyncio.Lock()
        self._profile_cache: dict[str, tuple[str, str]] = {}
        self._tokens = auth.TokenCache(settings)
        # unknown users are checked against this, at the real cost, so timing reveals nothing
        self._dummy_hash = auth.hash_password("not-a-real-password", settings.password_scrypt_n)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _shard_sender(handle: Any) -> Any:
        async def send(cmds: list[WriteCommand]) -> list[WriteResult]:
            results: list[WriteResult] = await handle.write_many.remote(cmds)
            return results

        return send

    async def _read_sender(self, requests: list[ReadRequest]) -> list[bytes | None]:
        results: list[bytes | None] = await self._ranker.read_many.remote(requests)
        return results

    async def _db(self) -> asyncpg.Pool:
        if self._pg is None:
            async with self._pg_lock:
                if self._pg is None:
                    try:
                        self._pg = await create_pool(self._settings)
                    except (OSError, asyncpg.PostgresError) as exc:
                        raise Unavailable("Postgres is unreachable") from exc
        return self._pg

    def _region(self, region: str) -> str:
        name = region.strip().upper()
        if name not in self._regions:
            raise BadRequest(f"unknown region {region!r}; one of {sorted(self._regions)}")
        return name

    def _claims(self, authorization: str | None) -> Claims:
        return self._tokens.decode(auth.bearer_token(authorization))

    async def _write(
        self, claims: Claims, mode: WriteMode, value: int, key: str | None = None
    ) -> Response:
        """Run one write on the user's shard; the JSON entry, with the user's rate-limit headers."""
        result = await self._shard_write(claims, mode, value, key)
        entry = {
            "rank": result.rank,
            "user_id": claims.sub,
            "name": claims.name,
            "region": claims.region,
            "score": result.score,
        }
        if result.global_pending:  # GLOBAL's Redis unreachable: applied, folded in later
            entry.update(rank=None, global_pending=True)
        elif result.rank == 0:  # the board is being rebuilt: no rank rather than a wrong one
            entry.update(rank=None, warming=True)
        response = json_response(entry, 201 if mode == "create" else 200)
        if result.status == "replay":
            response.headers["Idempotent-Replayed"] = "true"
        if result.remaining >= 0:
            response.headers["X-RateLimit-Limit"] = str(self._limits.user.capacity)
            response.headers["X-RateLimit-Remaining"] = str(result.remaining)
        return response

    async def _shard_write(
        self, claims: Claims, mode: WriteMode, value: int, key: str | None = None
    ) -> WriteResult:
        if claims.region not in self._regions:
            raise BadRequest(f"region {claims.region!r} of this token is not served")
        shard = shard_for(self._topology, claims.region, claims.sub)
        cmd = WriteCommand(claims.sub, claims.name, claims.region, mode, value, key)
        try:
            result: WriteResult = await self._shard_batchers[shard].submit(cmd)
        except RayError as exc:
            log.warning("shard %s unavailable: %s", shard, exc)
            raise Unavailable(f"shard {shard} is restarting; retry shortly") from exc
        if result.status == "exists":
            raise Conflict("this user already has a leaderboard entry")
        if result.status == "out_of_range":
            raise ScoreOutOfRange("the resulting score would be outside +-(2^53 - 1)")
        if result.status == "unavailable":
            raise Unavailable("Redis is unreachable")
        if result.status == "rate_limited":
            raise RateLimited(result.scope, math.ceil(result.retry_after_us / 1e6))
        if result.status == "warming":
            raise Warming("the board is being rebuilt from Postgres; retry in a second")
        if result.status == "key_reused":
            raise KeyReused("this Idempotency-Key was used for a different request")
        if result.status == "queue_full":
            raise QueueFull(f"shard {shard} has too many events waiting for Postgres", 1)
        return result

    async def _admit_auth(self, request: Request) -> None:
        """Sign-up/login limits: per client address, and a global cap behind it."""
        limits = self._limits
        buckets = [(self._keys.auth_bucket(client_address(request)), limits.auth),
                   (self._keys.auth_bucket("*"), limits.auth_global)]
        buckets = [(key, b) for key, b in buckets if b.enabled]
        if not buckets:
            return
        try:
            reply = await self._take_tokens(
                keys=[key for key, _ in buckets], args=[a for _, b in buckets for a in b.args()]
            )
        except REDIS_DOWN as exc:
            raise Unavailable("Redis is unreachable") from exc
        if reply[0] == 0:
            raise RateLimited("auth", math.ceil(int(reply[2]) / 1e6))

    def _require_role(self, authorization: str | None, role: str) -> None:
        if self._claims(authorization).role != role:
            raise Forbidden(f"this endpoint needs a token with role {role}")

    async def _read(self, request: ReadRequest) -> bytes | None:
        """The JSON body of a read (None: the user is not on the board)."""
        try:
            return await self._reads.submit(request)
        except LeaderboardError:
            raise
        except RayError as exc:
            raise Unavailable("ranking replicas are unavailable") from exc

    # -- auth ------------------------------------------------------------------------------

    @api.post("/auth/register", status_code=201, response_model=RegisterResponse)
    async def register(self, body: RegisterRequest, request: Request) -> RegisterResponse:
        """Create an account (and, with initialScore, its leaderboard entry)."""
        region = self._region(body.region)
        await self._admit_auth(request)
        digest = await asyncio.to_thread(
            auth.hash_password, body.password, self._settings.password_scrypt_n
        )
        pg = await self._db()
        inserted = await pg.fetchval(
            "INSERT INTO credentials (user_id, name, region, password_hash) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
            body.user_id,
            body.name,
            region,
            digest,
        )
        if inserted is None:
            raise Conflict(f"user {body.user_id!r} already exists")
        token = auth.issue_token(self._settings, body.user_id, body.name, region)
        if body.initialScore is not None:
            claims = auth.decode_token(self._settings, token)
            try:
                await self._shard_write(claims, "set", body.initialScore)
            except LeaderboardError:
                await pg.execute("DELETE FROM credentials WHERE user_id = $1", body.user_id)
                raise
        return RegisterResponse(
            token=token, user=UserPublic(user_id=body.user_id, name=body.name, region=region)
        )

    @api.post("/auth/login", response_model=TokenResponse)
    async def login(self, body: LoginRequest, request: Request) -> TokenResponse:
        """Exchange credentials for a token; the same 401 for unknown users and wrong passwords."""
        await self._admit_auth(request)
        pg = await self._db()
        row = await pg.fetchrow(
            "SELECT name, region, password_hash FROM credentials WHERE user_id = $1", body.user_id
        )
        stored = row["password_hash"] if row else self._dummy_hash
        ok = await asyncio.to_thread(auth.verify_password, body.password, stored)
        if row is None or not ok:
            raise Unauthorized("wrong user_id or password")
        return TokenResponse(
            token=auth.issue_token(self._settings, body.user_id, row["name"], row["region"])
        )

    # -- writes ----------------------------------------------------------------------------

    @api.post("/score/create", status_code=201, response_model=RankEntry)
    async def create(
        self,
        body: Annotated[ScoreCreate | None, Body()] = None,
        authorization: AuthHeader = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Create the caller's entry (an empty body means score 0); 409 if it exists."""
        claims = self._claims(authorization)
        body = body or ScoreCreate()
        if body.region is not None and self._region(body.region) != claims.region:
            raise BadRequest(f"region must be the account's region {claims.region!r}")
        return await self._write(claims, "create", body.initialScore, idempotency_key)

    @api.post("/score/update", response_model=RankEntry)
    async def update(
        self, body: ScoreUpdate, authorization: AuthHeader = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Set the caller's score (creating the entry if needed)."""
        return await self._write(self._claims(authorization), "set", body.score, idempotency_key)

    @api.post("/score/add", response_model=RankEntry)
    async def add(
        self, body: ScoreAdd, authorization: AuthHeader = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Add ``delta`` to the caller's score (from 0 if no entry yet)."""
        return await self._write(self._claims(authorization), "add", body.delta, idempotency_key)

    # -- reads -----------------------------------------------------------------------------

    @api.get("/top", response_model=TopResponse)
    async def top(
        self,
        region: RegionQuery = GLOBAL,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """The board's first ``limit`` entries and its size."""
        board = self._region(region)
        return json_body(await self._read(("top", board, limit, "")))

    @api.get("/rank/{user_id}", response_model=RankEntry)
    async def rank(self, user_id: UserIdPath, region: RegionQuery = GLOBAL) -> Response:
        """A user's exact rank on a board; 404 when they are not on it."""
        board = self._region(region)
        entry = await self._read(("rank", board, 0, user_id))
        if entry is None:
            raise NotFound(f"user {user_id!r} is not on the {board} board")
        return json_body(entry)

    @api.get("/around/{user_id}", response_model=AroundResponse)
    async def around(
        self,
        user_id: UserIdPath,
        region: RegionQuery = GLOBAL,
        span: Annotated[int, Query(ge=1, le=100, alias="range")] = 10,
    ) -> Response:
        """Up to ``range`` entries above and below a user (the user is in ``self``)."""
        board = self._region(region)
        result = await self._read(("around", board, span, user_id))
        if result is None:
            raise NotFound(f"user {user_id!r} is not on the {board} board")
        return json_body(result)

    # -- operations ------------------------------------------------------------------------

    @api.post("/scores/batch")
    async def batch(self, body: BatchRequest, authorization: AuthHeader = None) -> Response:
        """Up to 1,000 writes from a trusted game server (token role ``server``), one call per
        shard; one answer per item, in order. Per-user and per-region limits still apply."""
        self._require_role(authorization, "server")
        profiles = await self._profiles({item.user_id for item in body.items})
        answers: list[dict[str, Any] | None] = [None] * len(body.items)
        by_shard: dict[str, list[tuple[int, WriteCommand]]] = {}
        for i, item in enumerate(body.items):
            profile = profiles.get(item.user_id)
            if profile is None or profile[1] not in self._regions:
                answers[i] = {"user_id": item.user_id, "status": "refused",
                              "error": "unknown_user", "detail": "no such user"}
                continue
            mode: WriteMode = "set" if item.score is not None else "add"
            value = item.score if item.score is not None else item.delta
            cmd = WriteCommand(item.user_id, profile[0], profile[1], mode, int(value or 0),
                               item.idempotency_key)
            shard = shard_for(self._topology, profile[1], item.user_id)
            by_shard.setdefault(shard, []).append((i, cmd))
        groups = list(by_shard.items())
        outcomes = await asyncio.gather(
            *(self._batch_call(shard, [cmd for _, cmd in items]) for shard, items in groups))
        for (_, items), results in zip(groups, outcomes, strict=True):
            for (i, cmd), result in zip(items, results, strict=True):
                answers[i] = batch_answer(cmd, result)
        return json_response({"results": answers})

    async def _batch_call(self, shard: str, cmds: list[WriteCommand]) -> list[WriteResult]:
        try:
            results: list[WriteResult] = await self._shards[shard].write_many.remote(cmds)
            return results
        except RayError:
            return [WriteResult("unavailable") for _ in cmds]

    async def _profiles(self, user_ids: set[str]) -> dict[str, tuple[str, str]]:
        """(name, region) of registered users; names and regions never change, so cached."""
        missing = [u for u in user_ids if u not in self._profile_cache]
        if missing:
            pg = await self._db()
            try:
                rows = await pg.fetch(
                    "SELECT user_id, name, region FROM credentials WHERE user_id = ANY($1)",
                    missing)
            except (OSError, asyncpg.PostgresError) as exc:
                raise Unavailable("Postgres is unreachable") from exc
            if len(self._profile_cache) > PROFILE_CACHE_SIZE:
                self._profile_cache.clear()
            for r in rows:
                self._profile_cache[r["user_id"]] = (r["name"], r["region"])
        return {u: self._profile_cache[u] for u in user_ids if u in self._profile_cache}

    @api.post("/admin/writers/pause")
    async def pause_writers(self, authorization: AuthHeader = None) -> dict[str, Any]:
        """Stop moving events into Postgres (admin token); writes queue up to the backlog limit."""
        self._require_role(authorization, "admin")
        await asyncio.gather(*(w.pause.remote() for w in self._writers))
        return {"writers": await self._writer_stats()}

    @api.post("/admin/writers/resume")
    async def resume_writers(self, authorization: AuthHeader = None) -> dict[str, Any]:
        """Resume the writers (admin token)."""
        self._require_role(authorization, "admin")
        await asyncio.gather(*(w.resume.remote() for w in self._writers))
        return {"writers": await self._writer_stats()}

    @api.get("/admin/writers")
    async def writers(self, authorization: AuthHeader = None) -> dict[str, Any]:
        """Each writer's state and counters (admin token)."""
        self._require_role(authorization, "admin")
        return {"writers": await self._writer_stats()}

    async def _writer_stats(self) -> list[dict[str, Any]]:
        try:
            return list(await asyncio.gather(*(w.stats.remote() for w in self._writers)))
        except RayError as exc:
            raise Unavailable("a writer actor is restarting; retry shortly") from exc

    @api.get("/health")
    async def health(self) -> JSONResponse:
        """Each component's state; 503 when a Redis instance or Postgres cannot be reached."""
        states = await asyncio.gather(*(self._instance_health(url) for url in self._instances))
        pg_state = await self._pg_health()
        redis_ok = all(st.state == "ok" for st in states)
        ok = redis_ok and pg_state == "ok"
        body: dict[str, Any] = {
            "status": "ok" if ok else "degraded",
            "redis": "ok" if redis_ok else "unreachable",
            "postgres": pg_state,
            "warming": any(st.warming for st in states),
            "backlog": {k: v for st in states for k, v in st.backlog.items()},
            "dead_letters": {k: v for st in states for k, v in st.dead.items()},
        }
        if len(states) > 1:
            body["redis_instances"] = {redacted(url): st.state
                                       for url, st in zip(self._instances, states, strict=True)}
            body["global"] = await self._global_health(states)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def _instance_health(self, url: str) -> InstanceHealth:
        """One instance: reachable, per shard on it the backlog and the dead letters, warming."""
        shards = self._topology.shards_on(url)
        redis = self._instances[url]
        try:
            async with asyncio.timeout(2):
                async with redis.pipeline(transaction=False) as pipe:
                    for shard in shards:
                        pipe.xlen(self._keys.stream(shard))
                        pipe.xlen(self._keys.dead(shard))
                    pipe.exists(self._keys.epoch)
                    pipe.exists(self._keys.warming)
                    *counts, epoch, flag = [int(n) for n in await pipe.execute()]
                oldest = await oldest_event_ages(redis, self._keys, shards)
        except (TimeoutError, *REDIS_DOWN):
            return InstanceHealth("unreachable")
        backlog = dict(zip(shards, counts[0::2], strict=True))
        dead = dict(zip(shards, counts[1::2], strict=True))
        return InstanceHealth("ok", backlog, dead, bool(flag) or not epoch, oldest)

    async def _global_health(self, states: list[InstanceHealth]) -> dict[str, Any]:
        """GLOBAL staleness: the fold-lag histogram, and the oldest event not yet folded for sure."""
        remote = set(self._topology.remote_shards())
        unconfirmed = {k: v for st in states for k, v in st.oldest.items() if k in remote}
        try:
            async with asyncio.timeout(2):
                stats = await self._redis.hgetall(self._keys.fold_stats)
        except (TimeoutError, *REDIS_DOWN):
            stats = {}
        return {**FoldLag.from_hash(stats).as_dict(),
                "oldest_unconfirmed_ms": max(unconfirmed.values(), default=0),
                "unconfirmed_by_shard": unconfirmed}

    async def _pg_health(self) -> str:
        try:
            async with asyncio.timeout(2):
                pg = await self._db()
                await pg.fetchval("SELECT 1")
            return "ok"
        except (TimeoutError, Unavailable, OSError, asyncpg.PostgresError):
            return "unreachable"
