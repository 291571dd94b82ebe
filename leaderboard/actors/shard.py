"""RegionShard: the single owner of one shard's score writes and its Redis connection."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

from leaderboard.fold import GlobalFold
from leaderboard.keys import WRITE_SCORE, Keys
from leaderboard.pipeline.db import create_pool
from leaderboard.recovery import BoardGuard, Event, Unstored
from leaderboard.redis_client import REDIS_DOWN, connect, run_script_many
from leaderboard.settings import GLOBAL, MAX_SCORE, Settings
from leaderboard.shards import Topology, region_of

log = logging.getLogger(__name__)

WriteMode = Literal["set", "add", "create"]


@dataclass(frozen=True)
class WriteCommand:
    """One score write for one user, already authenticated and validated."""

    user_id: str
    name: str
    region: str
    mode: WriteMode
    value: int
    idempotency_key: str | None = None


@dataclass(frozen=True)
class WriteResult:
    """What the atomic write script did; ``rank`` is 1-based on GLOBAL (0: board warming).

    ``remaining`` is the user's tokens left after an admitted write (-1: no user limit);
    ``retry_after_us`` says when a rate-limited write would be admitted. ``global_pending``: the
    write is applied but GLOBAL's instance could not be reached to fold it in (the writers will).
    """

    status: Literal[
        "ok", "replay", "exists", "out_of_range", "queue_full", "rate_limited", "key_reused",
        "warming", "unavailable",
    ]
    score: int = 0
    version: int = 0
    rank: int = 0
    remaining: int = -1
    scope: str = ""
    retry_after_us: int = 0
    global_pending: bool = False


class RegionShard:
    """Runs every write of its shard as one atomic Redis script (boards, hash, stream).

    On GLOBAL's instance that script updates GLOBAL too. On another instance it updates the
    region board only, and the shard then folds the group's writes into GLOBAL (``GlobalFold``).
    """

    def __init__(self, settings: Settings, shard: str) -> None:
        self._keys = Keys(settings.board)
        self._shard = shard
        limits = settings.limits()
        self._limit_args = [*limits.user.args(), *limits.region.args(), limits.queue_length]
        self._idem_ttl = settings.idempotency_ttl_seconds
        self.topology = Topology.of(settings)
        self.url = self.topology.url_of_shard(shard)
        self._redis = connect(self.url, retries=0)
        self._write = self._redis.register_script(WRITE_SCORE)
        self._fold: GlobalFold | None = None
        if self.topology.is_remote(region_of(shard)):
            self._fold = GlobalFold(connect(self.topology.global_url), self._keys)
        self._settings = settings
        self.unstored = Unstored()

    async def write(self, cmd: WriteCommand) -> WriteResult:
        """Apply one write; a Redis outage answers ``unavailable``, never a partial write."""
        return (await self.write_many([cmd]))[0]

    async def write_many(self, cmds: list[WriteCommand]) -> list[WriteResult]:
        """Apply writes in order, one atomic script each, in one Redis round trip."""
        try:
            replies = await run_script_many(
                self._redis, self._write, [self._script_call(cmd) for cmd in cmds])
        except REDIS_DOWN as exc:
            log.warning("shard %s: Redis unreachable: %s", self._shard, exc)
            return [WriteResult("unavailable") for _ in cmds]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply  # a script error is a bug, not an answer
        results = [self._result(cmd, reply) for cmd, reply in zip(cmds, replies, strict=True)]
        if self._fold is not None:
            results = await self._fold_global(cmds, replies, results)
        return results

    async def _fold_global(
        self, cmds: list[WriteCommand], replies: list[list[str | int]], results: list[WriteResult]
    ) -> list[WriteResult]:
        """The fast path: fold the applied writes into GLOBAL; their ranks become GLOBAL ranks."""
        assert self._fold is not None
        applied = [i for i, r in enumerate(results) if r.status == "ok"]
        rows = [self._event(cmds[i], results[i], int(replies[i][5])).row() for i in applied]
        try:
            ranks = await self._fold.apply(rows, "fast")
        except REDIS_DOWN as exc:
            log.warning("shard %s: GLOBAL unreachable, the writers will fold: %s", self._shard, exc)
            for i in applied:
                results[i] = replace(results[i], rank=0, global_pending=True)
            return results
        for i, rank in zip(applied, ranks, strict=True):
            results[i] = replace(results[i], rank=rank + 1)
        keyed = [(cmds[i], results[i]) for i in applied if cmds[i].idempotency_key]
        if keyed:  # a replay must answer the GLOBAL rank too, not the region's
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for cmd, result in keyed:
                        key = self._keys.idempotency(cmd.user_id, cmd.idempotency_key or "")
                        pipe.hset(key, "rank", result.rank - 1)
                    await pipe.execute()
            except REDIS_DOWN as exc:
                log.warning("shard %s: idempotency ranks not updated: %s", self._shard, exc)
        return results

    @staticmethod
    def _event(cmd: WriteCommand, result: WriteResult, reached: int) -> Event:
        return Event(cmd.user_id, cmd.name, cmd.region, result.score, result.version, reached)

    def _script_call(self, cmd: WriteCommand) -> tuple[list[str], list[str | int]]:
        """The write script's KEYS and ARGV for one command."""
        k = self._keys
        keys = [
            k.user(cmd.user_id),
            # on another instance than GLOBAL's, the script's "GLOBAL" is the region board
            k.board(cmd.region if self._fold is not None else GLOBAL),
            k.board(cmd.region),
            k.stream(self._shard),
            k.clock,
            k.user_bucket(cmd.user_id),
            k.region_bucket(cmd.region),
            k.idempotency(cmd.user_id, cmd.idempotency_key or ""),
            k.epoch,
            k.warming,
        ]
        fingerprint = f"{cmd.mode}:{cmd.value}" if cmd.idempotency_key else ""
        args: list[str | int] = [
            cmd.user_id, cmd.name, cmd.region, cmd.mode, cmd.value, MAX_SCORE, *self._limit_args,
            fingerprint, self._idem_ttl,
        ]
        return keys, args

    def _result(self, cmd: WriteCommand, reply: list[str | int]) -> WriteResult:
        status = str(reply[0])
        if status == "rate_limited":
            return WriteResult("rate_limited", scope=str(reply[1]), retry_after_us=int(reply[2]))
        if status not in ("ok", "replay"):
            return WriteResult(status)  # type: ignore[arg-type]
        score, version = int(reply[1]), int(reply[2])
        result = WriteResult(status, score, version, int(reply[3]) + 1, int(reply[4]))  # type: ignore[arg-type]
        if status == "ok":
            self.unstored.add(self._event(cmd, result, int(reply[5])))
        return result

    async def backlog(self) -> int:
        """Events on this shard's stream not yet stored in Postgres."""
        return int(await self._redis.xlen(self._keys.stream(self._shard)))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())


class RegionShardActor(RegionShard):
    """The shard as a Ray actor: also guards its board against Redis losing its data."""

    GUARD_INTERVAL_S = 0.5

    async def __init__(self, settings: Settings, shard: str) -> None:  # type: ignore[misc]
        super().__init__(settings, shard)
        boards = partial(self.topology.boards_on, self.url)
        self._guard = BoardGuard(self._redis, self._keys, shard, self.unstored, boards)
        self._guard_task = asyncio.create_task(self._guard_loop())

    async def _guard_loop(self) -> None:
        pg = None
        while True:
            try:
                if pg is None:
                    pg = await create_pool(self._settings, max_size=2)
                await self._guard.check(pg)
                await self.unstored.confirm(pg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or Postgres away: look again shortly
                log.warning("shard %s: board guard: %r", self._shard, exc)
            await asyncio.sleep(self.GUARD_INTERVAL_S)

    async def unstored_count(self) -> int:
        """Writes of this shard that Postgres may not hold yet."""
        return len(self.unstored)
