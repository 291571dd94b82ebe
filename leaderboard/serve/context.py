"""What the HTTP handlers work with: the shard and ranking handles behind micro-batchers,
Redis, Postgres, the token cache. Built once per gateway replica from its ``__init__``
arguments; the handlers in ``serve/handlers/`` are plain functions of a ``Context``."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine
from functools import partial
from typing import Any

from leaderboard import board_purge, board_registry
from leaderboard.actors.channel import ChannelClient, channel_token
from leaderboard.actors.router import shard_for
from leaderboard.actors.shard_types import (
    WriteCommand,
    WriteMode,
    WriteResult,
    command_rows,
    results_of,
)
from leaderboard.board_cache import BoardCache
from leaderboard.errors import BadRequest, Forbidden, LeaderboardError, RateLimited, Unavailable
from leaderboard.heap import freeze_startup_heap
from leaderboard.keys import Keys
from leaderboard.metrics.record import GAUGE_PERIOD_S, GatewayMetrics
from leaderboard.models import Claims
from leaderboard.redis_client import REDIS_DOWN, connect
from leaderboard.serve import auth
from leaderboard.serve.asgi import Route
from leaderboard.serve.batching import MicroBatcher
from leaderboard.serve.failures import RAY_UNAVAILABLE
from leaderboard.serve.live import LiveHub
from leaderboard.serve.pg import Postgres
from leaderboard.serve.ranking import Answer, ReadRequest
from leaderboard.serve.read_through import ReadThrough
from leaderboard.serve.refusals import refusal
from leaderboard.settings import Settings
from leaderboard.shards import Topology
from leaderboard.write_scripts import TAKE_TOKENS

log = logging.getLogger(__name__)

PROFILE_CACHE_SIZE = 100_000
PURGE_CHECK_S = 30.0  # how often each replica finishes deletions another one left unfinished


class Context:
    """One gateway replica's clients and the operations the handlers share."""

    def __init__(
        self, settings: Settings, ranker: Any, shards: dict[str, Any], writers: list[Any],
        ranking_replicas: int = 1,
    ) -> None:
        self.settings = settings
        self.shards = shards
        self.writers = writers
        self.topology = Topology.of(settings)
        self.limits = settings.limits()
        self.regions = set(settings.region_list)
        self.keys = Keys(settings.board)
        self.redis = connect(settings.redis_url)
        self.instances = {url: self.redis if url == settings.redis_url else connect(url)
                          for url in self.topology.urls()}
        self.pg = Postgres(settings)
        self.boards = BoardCache(self.pg, self.redis, self.keys)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.tokens = auth.TokenCache(settings)
        # unknown users are checked against this, at the real cost, so timing reveals nothing
        self.dummy_hash = auth.hash_password("not-a-real-password", settings.password_scrypt_n)
        self._ranker = ranker
        self._take_tokens = self.redis.register_script(TAKE_TOKENS)
        self._profiles: dict[str, tuple[str, str]] = {}
        self.metrics = GatewayMetrics(settings.board, settings.metrics_board_list)
        size, wait = settings.batch_max_size, settings.batch_max_wait_ms / 1000
        token = partial(channel_token, settings.jwt_secret.get_secret_value(), settings.board)
        self._channels = {shard: ChannelClient(handle.channel_address.remote, token(shard))
                          for shard, handle in shards.items()}
        self._writes = {
            shard: MicroBatcher(partial(self._send, shard), max_size=size, max_wait_s=wait,
                                max_inflight=settings.shard_max_inflight)
            for shard in shards
        }
        # reads may spread over every ranking replica
        self._reads: MicroBatcher[ReadRequest, Answer] = MicroBatcher(
            self._read_sender, max_size=size, max_wait_s=wait,
            max_inflight=settings.batch_max_inflight * ranking_replicas)
        self.reads = ReadThrough(self.topology, self.keys, settings.read_cache_size,
                                 self._reads.submit, self.boards.get)
        self.live = LiveHub(self.read, self.boards.get, settings.live_max_watchers,
                            settings.live_frames_per_s)
        self.reads.watch(self.live.changed)

    async def _send(self, shard: str, cmds: list[WriteCommand]) -> list[WriteResult]:
        """One call to the shard, over its direct channel (or Ray, ``SHARD_CHANNEL=ray``), with
        commands and results as tuples; an unreachable shard is counted here and raises."""
        try:
            if self.settings.shard_channel == "direct":
                rows = await self._channels[shard].call(command_rows(cmds))
            else:
                rows = await self.shards[shard].write_rows.remote(command_rows(cmds))
        except RAY_UNAVAILABLE:
            self.metrics.writes.refuse(shard, cmds, "shard_unreachable")
            raise
        return results_of(rows)

    async def _read_sender(self, requests: list[ReadRequest]) -> list[Answer]:
        results: list[Answer] = await self._ranker.read_many.remote(requests)
        return results

    # -- background work -------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background, holding a reference until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """At the ASGI app's start-up: the board cache's refresh, the purge of deletions and the
        subscriptions (the read cache, the live views)."""
        self.spawn(self.boards.run())
        self.spawn(self._finish_deletions())
        self.spawn(self._report_metrics())
        self.reads.start()
        freeze_startup_heap(self.settings)

    async def purge(self, board_id: str, generation: str) -> None:
        """Remove a deleted board's keys and rows once no event of it can still arrive."""
        try:
            await board_purge.purge(self.pg, self.instances, self.topology, self.keys,
                                    board_id, generation)
        except (*REDIS_DOWN, Unavailable) as exc:
            log.warning("board %s: purge interrupted, retried later: %r", board_id, exc)

    async def _report_metrics(self) -> None:
        """This replica's live streams, set again each period (Ray forgets unset gauges)."""
        while True:
            stats = self.live.stats()
            self.metrics.live(stats["watchers"], stats["views"])
            await asyncio.sleep(GAUGE_PERIOD_S)

    async def _finish_deletions(self) -> None:
        """Deletions a crashed or restarted replica left behind: unregister again, purge."""
        while True:
            await asyncio.sleep(PURGE_CHECK_S)
            try:
                rows = await self.pg.fetch(
                    "SELECT id, generation FROM boards WHERE deleted_at IS NOT NULL "
                    "AND deleted_at < now() - interval '30 seconds'")
                for row in rows:
                    await board_registry.retract(self.instances.values(), self.redis, self.keys,
                                                 row["id"])
                    await self.purge(row["id"], row["generation"])
            except (*REDIS_DOWN, Unavailable) as exc:
                log.warning("unfinished deletions: %r", exc)

    # -- inputs ----------------------------------------------------------------------------

    def region(self, region: str) -> str:
        """A served region's canonical name (case-insensitive), else a 422."""
        name = region.strip().upper()
        if name not in self.regions:
            raise BadRequest(f"unknown region {region!r}; one of {sorted(self.regions)}")
        return name

    def claims(self, authorization: str | None) -> Claims:
        return self.tokens.decode(auth.bearer_token(authorization))

    def guard(self, route: Route, headers: dict[str, str]) -> Claims | None:
        """The route's token rule: none, any valid token, or one with the route's role."""
        if route.token is None:
            return None
        claims = self.claims(headers.get("authorization"))
        if route.token != "any" and claims.role != route.token:
            raise Forbidden(f"this endpoint needs a token with role {route.token}")
        return claims

    # -- writes and reads ------------------------------------------------------------------

    async def write(
        self, claims: Claims, mode: WriteMode, value: int, key: str | None = None,
        board: str = "default", metadata: str = "",
    ) -> tuple[WriteCommand, WriteResult]:
        """Run one write on the user's shard; a refusal raises its error."""
        if claims.region not in self.regions:
            raise BadRequest(f"region {claims.region!r} of this token is not served")
        shard = shard_for(self.topology, claims.region, claims.sub)
        cmd = WriteCommand(claims.sub, claims.name, claims.region, mode, value, key, board,
                           metadata)
        result = await self._writes[shard].submit(cmd)
        error = refusal(result)
        if error is not None:
            raise error
        return cmd, result

    async def write_group(self, shard: str, cmds: list[WriteCommand]) -> list[WriteResult]:
        """A batch's commands for one shard in one call; an unreachable shard refuses each."""
        try:
            return await self._send(shard, cmds)
        except RAY_UNAVAILABLE as exc:
            log.warning("shard %s unavailable: %r", shard, exc)
            return [WriteResult("unavailable") for _ in cmds]

    async def read(self, request: ReadRequest) -> bytes | None:
        """The JSON body of a read (None: the user is not on the board); a refusal raises."""
        answer = await self.reads.read(request)
        if isinstance(answer, LeaderboardError):
            raise answer
        return answer

    # -- accounts --------------------------------------------------------------------------

    async def admit_auth(self, client: str) -> None:
        """Sign-up/login limits: per client address, and a global cap behind it."""
        limits = self.limits
        buckets = [(self.keys.auth_bucket(client), limits.auth),
                   (self.keys.auth_bucket("*"), limits.auth_global)]
        buckets = [(key, b) for key, b in buckets if b.enabled]
        if not buckets:
            return
        try:
            reply = await self._take_tokens(
                keys=[key for key, _ in buckets], args=[a for _, b in buckets for a in b.args()])
        except REDIS_DOWN as exc:
            raise Unavailable("Redis is unreachable") from exc
        if reply[0] == 0:
            self.metrics.auth_limited()
            raise RateLimited("auth", math.ceil(int(reply[2]) / 1e6))

    async def profiles(self, user_ids: set[str]) -> dict[str, tuple[str, str]]:
        """(name, region) of registered users; names and regions never change, so cached."""
        missing = [u for u in user_ids if u not in self._profiles]
        if missing:
            rows = await self.pg.fetch(
                "SELECT user_id, name, region FROM credentials WHERE user_id = ANY($1)", missing)
            if len(self._profiles) > PROFILE_CACHE_SIZE:
                self._profiles.clear()
            for r in rows:
                self._profiles[r["user_id"]] = (r["name"], r["region"])
        return {u: self._profiles[u] for u in user_ids if u in self._profiles}

    async def writer_stats(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(w.stats.remote() for w in self.writers)))
