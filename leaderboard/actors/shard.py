"""RegionShard: the single owner of one shard's score writes and its Redis connection (the Ray
actor around it, with its maintenance loops and direct channel: ``shard_actor.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

# the write types moved to shard_types; still importable from here
from leaderboard.actors.shard_types import WriteCommand as WriteCommand
from leaderboard.actors.shard_types import WriteMode as WriteMode
from leaderboard.actors.shard_types import WriteResult as WriteResult
from leaderboard.actors.shard_types import fingerprint as fingerprint
from leaderboard.boards import DEFAULT, Board
from leaderboard.fold import DEFERRED, WARMING, FoldEvent, GlobalFold
from leaderboard.keys import DEFAULT_BOARD, Keys
from leaderboard.recovery import Event, Unstored
from leaderboard.redis_client import REDIS_DOWN, RedisClock, connect, run_script_many
from leaderboard.settings import GLOBAL, MAX_SCORE, Settings
from leaderboard.shards import Topology, region_of
from leaderboard.write_scripts import WRITE_SCORE

log = logging.getLogger(__name__)

BoardLookup = Callable[[str], Board | None]
STALE_RERUNS = 3  # rounds of season_stale reruns in one write_many before answering unavailable


def default_only(board: str) -> Board | None:
    """The board lookup of a shard without a board cache: ``default`` only."""
    return DEFAULT if board == DEFAULT_BOARD else None


class RegionShard:
    """Runs every write of its shard as one atomic Redis script (boards, hash, stream, and the
    announcement the gateways' read caches and live views follow: ``leaderboard/changes.py``).

    On GLOBAL's instance that script updates GLOBAL too. On another instance it updates the
    region board only, and the shard then folds the group's writes into GLOBAL (``GlobalFold``).
    """

    def __init__(self, settings: Settings, shard: str, boards: BoardLookup = default_only) -> None:
        self.boards = boards  # board id -> definition (the lead's BoardCache.get plugs in here)
        self.clock = RedisClock()  # for choosing candidate seasons
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
        """Apply writes in order, one atomic script each, in one Redis round trip.

        A write whose two candidate seasons were both wrong (``season_stale``: this shard's
        estimate of Redis's clock was off by more than a season) runs again, with candidates
        from the clock the script saw, in a further round trip of the same call.
        """
        results: list[WriteResult | None] = [self._precheck(cmd) for cmd in cmds]
        replies: list[list[str | int]] = [[] for _ in cmds]
        hints: dict[int, int] = {}
        todo = [i for i, r in enumerate(results) if r is None]
        for _ in range(STALE_RERUNS + 1):
            if not todo:
                break
            try:
                got = await run_script_many(
                    self._redis, self._write, [self._script_call(cmds[i], hints.get(i))
                                               for i in todo])
            except REDIS_DOWN as exc:
                log.warning("shard %s: Redis unreachable: %s", self._shard, exc)
                break
            stale = []
            for i, reply in zip(todo, got, strict=True):
                if isinstance(reply, Exception):
                    raise reply  # a script error is a bug, not an answer
                if reply[0] == "season_stale":
                    hints[i] = int(reply[1])
                    self.clock.observe(hints[i])
                    stale.append(i)
                    continue
                replies[i], results[i] = reply, self._result(cmds[i], reply)
            todo = stale
        done = [WriteResult("unavailable") if r is None else r for r in results]
        if self._fold is not None:
            done = await self._fold_global(cmds, replies, done)
        return done

    def _precheck(self, cmd: WriteCommand) -> WriteResult | None:
        """A refusal that needs no Redis: an unknown board, or a kind its operator refuses."""
        if cmd.board == DEFAULT_BOARD:
            return None
        board = self.boards(cmd.board)
        if board is None:
            return WriteResult("unknown_board")
        if cmd.mode == "create" or not board.accepts("score" if cmd.mode == "set" else "delta"):
            return WriteResult("operator_mismatch")
        return None

    async def _fold_global(
        self, cmds: list[WriteCommand], replies: list[list[str | int]], results: list[WriteResult]
    ) -> list[WriteResult]:
        """The fast path: fold the applied writes (any boards) into GLOBAL; their ranks become
        GLOBAL ranks. A board deleted meanwhile, or one GLOBAL's instance does not know yet,
        answers no rank (the writers fold the latter)."""
        assert self._fold is not None
        applied, rows = [], []
        for i, r in enumerate(results):
            board = None if r.status != "ok" else self._board(cmds[i].board)
            if board is None:
                if r.status == "ok":  # deleted since its write: nothing to fold any more
                    results[i] = replace(r, rank=0)
                continue
            applied.append(i)
            cmd = cmds[i]
            rows.append(FoldEvent(cmd.user_id, r.name or cmd.name, cmd.region, r.score, r.version,
                                  int(replies[i][5]), r.version // 1000, board, r.season,
                                  r.metadata))
        try:
            ranks = await self._fold.apply(rows, "fast")
        except REDIS_DOWN as exc:
            log.warning("shard %s: GLOBAL unreachable, the writers will fold: %s", self._shard, exc)
            ranks = [DEFERRED] * len(rows)
        for i, rank in zip(applied, ranks, strict=True):
            results[i] = replace(results[i], rank=max(rank + 1, 0),
                                 global_pending=rank == DEFERRED)
        keyed = [(cmds[i], results[i], rows[n].board) for n, i in enumerate(applied)
                 if cmds[i].idempotency_key and ranks[n] >= WARMING]
        if keyed:  # a replay must answer the GLOBAL rank too, not the region's
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for cmd, result, board in keyed:
                        key = self._keys.idempotency(cmd.user_id, cmd.idempotency_key or "",
                                                     board.id, board.generation)
                        pipe.hset(key, "rank", result.rank - 1)
                    await pipe.execute()
            except REDIS_DOWN as exc:
                log.warning("shard %s: idempotency ranks not updated: %s", self._shard, exc)
        return results

    def _board(self, board_id: str) -> Board | None:
        return DEFAULT if board_id == DEFAULT_BOARD else self.boards(board_id)

    @staticmethod
    def _event(cmd: WriteCommand, result: WriteResult, reached: int) -> Event:
        return Event(cmd.user_id, result.name or cmd.name, cmd.region, result.score,
                     result.version, reached, cmd.board, result.season, result.metadata)

    def _script_call(
        self, cmd: WriteCommand, redis_us: int | None = None
    ) -> tuple[list[str], list[str | int]]:
        """The write script's KEYS and ARGV for one command (``redis_us``: Redis's clock as a
        ``season_stale`` answer reported it, to pick the candidate seasons from)."""
        k = self._keys
        board = self._board(cmd.board)
        assert board is not None  # _precheck answered unknown boards
        season = 1 if board is DEFAULT else self._candidate(board, redis_us)
        # board default, season 1: today's keys (k itself), without building a prefix per write
        p = k if board is DEFAULT else k.season(board.id, board.generation, season)
        # on another instance than GLOBAL's, the script's "GLOBAL" is the region board
        global_board = cmd.region if self._fold is not None else GLOBAL
        idem = k.idempotency(cmd.user_id, cmd.idempotency_key or "") if board is DEFAULT else \
            k.idempotency(cmd.user_id, cmd.idempotency_key or "", board.id, board.generation)
        keys = [
            p.user(cmd.user_id), p.board(global_board), p.board(cmd.region),
            k.stream(self._shard), k.clock, k.user_bucket(cmd.user_id),
            k.region_bucket(cmd.region), idem, k.epoch, k.warming,
        ]
        args: list[str | int] = [
            cmd.user_id, cmd.name, cmd.region, self._mode(board, cmd), cmd.value, MAX_SCORE,
            *self._limit_args, fingerprint(cmd), self._idem_ttl, cmd.metadata,
        ]
        if board is not DEFAULT:
            nxt = k.season(board.id, board.generation, season + 1)
            keys += [nxt.user(cmd.user_id), nxt.board(global_board), nxt.board(cmd.region),
                     k.boards, k.seasons(board.id, board.generation)]
            start, end = board.schedule.bounds(season)
            end_next = None if end is None else board.schedule.bounds(season + 1)[1]
            args += [board.id, board.generation, board.order, season, start,
                     "" if end is None else end, "" if end_next is None else end_next]
        keys.append(k.profile(cmd.user_id))  # always the last key
        return keys, args

    def _candidate(self, board: Board, redis_us: int | None) -> int:
        """Season k of the two candidates (k, k + 1): the season at Redis's estimated clock."""
        t = self.clock.now_us() if redis_us is None else redis_us
        return board.schedule.season_at(t) or 1  # before the start: the script answers 409

    @staticmethod
    def _mode(board: Board, cmd: WriteCommand) -> str:
        """The script's mode: ``best`` for best boards; an incr is an add from 0."""
        return "best" if board.operator == "best" else cmd.mode

    def _result(self, cmd: WriteCommand, reply: list[str | int]) -> WriteResult:
        status = str(reply[0])
        if status == "rate_limited":
            return WriteResult("rate_limited", scope=str(reply[1]), retry_after_us=int(reply[2]))
        if status == "season_not_started":
            self.clock.observe(int(reply[1]))
            board = self.boards(cmd.board)
            wait = 0 if board is None else max(0, board.start_us - int(reply[1]))
            return WriteResult("season_not_started", retry_after_us=wait)
        if status not in ("ok", "replay"):
            return WriteResult(status)  # type: ignore[arg-type]
        score, version = int(reply[1]), int(reply[2])
        result = WriteResult(status, score, version, int(reply[3]) + 1, int(reply[4]),  # type: ignore[arg-type]
                             season=int(reply[6]), improved=int(reply[7]) == 1,
                             name=str(reply[8]), metadata=str(reply[9]))
        if status == "ok" and result.improved:
            if cmd.board != DEFAULT_BOARD:  # only other boards choose seasons by the clock
                self.clock.observe(version)
            self.unstored.add(self._event(cmd, result, int(reply[5])))
        return result

    async def backlog(self) -> int:
        """Events on this shard's stream not yet stored in Postgres."""
        return int(await self._redis.xlen(self._keys.stream(self._shard)))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
