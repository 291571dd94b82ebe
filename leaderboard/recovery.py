"""Redis losing its data: detect it at once, replay what Postgres lacks, rebuild from Postgres.

Each board carries an epoch marker in Redis. A missing marker means Redis was emptied (a restart
without persistence, a flush, a failover to an empty replica): reads then answer from Postgres
and say ``warming``, each shard replays the events it wrote that Postgres has not stored yet,
and one shard rebuilds the boards from Postgres in chunks, never overwriting a newer version.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from leaderboard import board_registry, erasure
from leaderboard.apply_scripts import RESTORE
from leaderboard.boards import DEFAULT, Board
from leaderboard.changes import announce_flush
from leaderboard.keys import DEFAULT_BOARD, Keys
from leaderboard.settings import GLOBAL
from leaderboard.targets import Targets

log = logging.getLogger(__name__)

Row = Sequence[str | int]  # user_id, name, region, score, version, reached, ts[, metadata]
# Which boards of a region's users this instance holds ('g', 'r', 'gr', '': none), see
# Topology.boards_on; one instance holding everything is the default.
Boards = Callable[[str], str]
BoardLookup = Callable[[str], Board | None]  # board id -> definition (None: deleted)
Item = tuple[Board, int, Row]  # a row to restore, with its board and season


def all_boards(region: str) -> str:
    return "gr"


def default_only(board_id: str) -> Board | None:
    return DEFAULT if board_id == DEFAULT_BOARD else None


SCRIPT_ROWS = 1000
LOCK_MS = 300_000

MARK_WARMING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1
"""

# one board's season, keyset-paginated on the primary key (board, season, user_id)
SELECT_CHUNK = """
SELECT user_id, name, region, score, version, reached,
       (extract(epoch FROM updated_at) * 1000)::bigint AS ts, coalesce(metadata::text, '') AS meta
FROM leaderboard WHERE board = $3 AND season = $4 AND user_id > $1
ORDER BY user_id LIMIT $2
"""
# stored at that version or newer; or never to be stored: the user was erased, the board deleted
CONFIRM = """
SELECT u.board, u.season, u.user_id FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
  AS u(board, season, user_id, version)
WHERE EXISTS (SELECT 1 FROM leaderboard l WHERE l.board = u.board AND l.season = u.season
              AND l.user_id = u.user_id AND l.version >= u.version)
   OR EXISTS (SELECT 1 FROM erased_users e WHERE e.user_id = u.user_id)
   OR NOT EXISTS (SELECT 1 FROM boards b WHERE b.id = u.board AND b.deleted_at IS NULL)
"""
# whether the planner has statistics of leaderboard.user_id (ANALYZE stores them; TRUNCATE keeps)
HAS_STATISTICS = """
SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = current_schema()
               AND tablename = 'leaderboard' AND attname = 'user_id')
"""
ANALYZE_EVERY_S = 5.0  # at most this often while the table has no statistics (it may be empty)


async def restore(
    redis: aioredis.Redis, keys: Keys, rows: Iterable[Row], stream: str | None = None,
    boards: Boards = all_boards, board: Board = DEFAULT, season: int = 1,
) -> int:
    """Apply rows of one board's season where Redis has no newer version; with ``stream``,
    append them there too. Each row goes only to the boards ``boards(region)`` says this
    instance holds (none: skipped)."""
    return await restore_items(redis, keys, ((board, season, row) for row in rows), stream,
                               boards)


async def restore_items(
    redis: aioredis.Redis, keys: Keys, items: Iterable[Item], stream: str | None = None,
    boards: Boards = all_boards,
) -> int:
    """As ``restore``, for rows of any boards and seasons (a board's rows go to its season's
    keys with its sort key; a deleted board's, or a freed season's, are skipped)."""
    script = redis.register_script(RESTORE)
    applied = 0
    batch: list[tuple[Board, int, Row, str]] = []
    for board, season, row in items:
        held = boards(str(row[2]))
        if not held:
            continue
        batch.append((board, season, row, held))
        if len(batch) == SCRIPT_ROWS:
            applied += await _restore_batch(script, keys, batch, stream)
            batch = []
    if batch:
        applied += await _restore_batch(script, keys, batch, stream)
    return applied


async def _restore_batch(script: object, keys: Keys, batch: list[tuple[Board, int, Row, str]],
                         stream: str | None) -> int:
    targets = Targets(keys)
    events: list[str | int] = []
    for board, season, row, held in batch:
        events += [targets.index(board, season), *row[:7], held, row[7] if len(row) > 7 else ""]
    result = await script(  # type: ignore[operator]
        keys=[keys.clock, stream or keys.stream(GLOBAL), keys.boards],
        args=["1" if stream else "0", *targets.args(), *events])
    return int(result)


@dataclass
class RebuildProgress:
    """A rebuild as the shard's metrics see it: running, and the rows restored so far."""

    running: bool = False
    rows: int = 0


async def rebuild_from_postgres(
    redis: aioredis.Redis, pg: asyncpg.Pool, keys: Keys, chunk: int = 10_000,
    boards: Boards = all_boards, progress: RebuildProgress | None = None,
) -> int:
    """The registry, then each live board's current season (by this instance's clock) from the
    durable record; returns the rows applied (and counts them in ``progress`` as it goes).
    Ended seasons stay in Postgres (docs/boards.md)."""
    live = await board_registry.rewrite(redis, keys, pg)
    await erasure.restore_tombstones(redis, keys, pg)
    await erasure.restore_profiles(redis, keys, pg)
    sec, us = await redis.time()
    now = int(sec) * 1_000_000 + int(us)
    applied = 0
    for board in [DEFAULT, *live]:
        season = board.schedule.season_at(now)
        if season is not None:
            applied += await rebuild_season(redis, pg, keys, board, season, chunk, boards,
                                            progress)
    return applied


async def rebuild_season(
    redis: aioredis.Redis, pg: asyncpg.Pool, keys: Keys, board: Board, season: int,
    chunk: int = 10_000, boards: Boards = all_boards, progress: RebuildProgress | None = None,
) -> int:
    """Every row of one board's season into its keys, keyset-paginated by user_id."""
    counted = RebuildProgress() if progress is None else progress
    before = counted.rows
    pending: asyncio.Task[int] | None = None
    async for rows in durable_rows(pg, chunk, board.id, season):
        if pending is not None:
            counted.rows += await pending  # Redis applies one chunk while Postgres reads the next
        pending = asyncio.create_task(restore(
            redis, keys, [tuple(r) for r in rows], boards=boards, board=board, season=season))
    if pending is not None:
        counted.rows += await pending
    return counted.rows - before


async def durable_rows(pg: asyncpg.Pool, chunk: int, board: str = DEFAULT_BOARD,
                       season: int = 1) -> AsyncIterator[list[asyncpg.Record]]:
    """A board's season (default: board default) in chunks of ``chunk`` rows (restore's field
    order), by user_id."""
    last = ""
    while rows := await pg.fetch(SELECT_CHUNK, last, chunk, board, season):
        last = rows[-1]["user_id"]
        yield rows


@dataclass(frozen=True)
class Event:
    """A write this shard made, kept until Postgres has it (or a newer version)."""

    user_id: str
    name: str
    region: str
    score: int
    version: int
    reached: int
    board: str = "default"
    season: int = 1
    metadata: str = ""  # compact JSON; '' = none

    @property
    def slot(self) -> tuple[str, int, str]:
        return self.board, self.season, self.user_id

    def row(self) -> Row:
        return (self.user_id, self.name, self.region, self.score, self.version, self.reached,
                self.version // 1000, self.metadata)


Slot = tuple[str, int, str]  # board, season, user_id


class Unstored:
    """The latest write of each user, per board and season, that Postgres may not have yet."""

    def __init__(self) -> None:
        self._events: dict[Slot, Event] = {}
        self._analyzed = False
        self._analyzed_at = -ANALYZE_EVERY_S

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: Event) -> None:
        cur = self._events.get(event.slot)
        if cur is None or event.version > cur.version:
            self._events[event.slot] = event

    def events(self) -> list[Event]:
        return list(self._events.values())

    async def confirm(self, pg: asyncpg.Pool) -> int:
        """Forget the events Postgres holds (at that version or newer), and those it never will
        (an erased user's, a deleted board's); returns how many."""
        if not self._events:
            return 0
        if not self._analyzed:
            await self._ensure_statistics(pg)
        snapshot = dict(self._events)
        events = list(snapshot.values())
        rows = await pg.fetch(CONFIRM, [e.board for e in events], [e.season for e in events],
                              [e.user_id for e in events], [e.version for e in events])
        done = [(r["board"], r["season"], r["user_id"]) for r in rows]
        for slot in done:
            if self._events.get(slot) is snapshot[slot]:
                del self._events[slot]
        return len(done)

    async def _ensure_statistics(self, pg: asyncpg.Pool) -> None:
        """ANALYZE the leaderboard table once if it never was. Without statistics the planner
        may probe CONFIRM's rows through a score index, filtering every entry of the board: 86
        µs of Postgres CPU per event at 1,000 entries instead of 1.9 (the pkey), and worse as
        the board grows. Autovacuum analyzes it eventually where it is on; where it is off,
        nothing else would. Statistics survive TRUNCATE, and user_id's (unique) do not go
        stale, so once is enough."""
        if time.monotonic() - self._analyzed_at < ANALYZE_EVERY_S:
            return
        self._analyzed_at = time.monotonic()
        if not await pg.fetchval(HAS_STATISTICS):
            await pg.execute("ANALYZE leaderboard")
        self._analyzed = bool(await pg.fetchval(HAS_STATISTICS))


class BoardGuard:
    """Per shard: notices a lost board, replays its unstored events, rebuilds if elected."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, shard: str, unstored: Unstored,
        boards: Boards = all_boards, lookup: BoardLookup = default_only,
    ) -> None:
        self._redis = redis
        self._lookup = lookup
        self._boards = boards
        self._keys = keys
        self._stream = keys.stream(shard)
        self._unstored = unstored
        self._me = f"{shard}-{uuid.uuid4().hex[:8]}"
        self._seen_epoch: str | None = None
        self.progress = RebuildProgress()

    async def check(self, pg: asyncpg.Pool) -> str:
        """One look at the marker: 'ok', 'replayed' (another shard rebuilt), 'rebuilt', 'waiting'."""
        k, r = self._keys, self._redis
        epoch = await r.get(k.epoch)
        if epoch is not None:
            first_look, changed = self._seen_epoch is None, str(epoch) != self._seen_epoch
            self._seen_epoch = str(epoch)
            if not await r.exists(k.rebuild_lock):
                await r.delete(k.warming)  # left by a rebuilder that died after its epoch
            if changed and not first_look:  # lost and rebuilt before we looked: replay ours
                await self._replay()
                return "replayed"
            return "ok"
        # flag warming only while the epoch is still missing: a rebuild may just have finished
        if not await r.eval(MARK_WARMING, 2, k.epoch, k.warming, self._me):
            return "ok"
        await announce_flush([r], k)  # read caches: reads answer from Postgres, say warming
        await board_registry.rewrite(r, k, pg)  # before any replay: RESTORE checks it
        await erasure.restore_tombstones(r, k, pg)  # and skips erased users
        await self._replay()
        if not await r.set(k.rebuild_lock, self._me, nx=True, px=LOCK_MS):
            return "waiting"
        self.progress = RebuildProgress(running=True)
        try:
            rows = await rebuild_from_postgres(r, pg, k, boards=self._boards,
                                               progress=self.progress)
            new_epoch = uuid.uuid4().hex
            await r.set(k.epoch, new_epoch)
            await announce_flush([r], k)  # read caches: the board is whole again
            self._seen_epoch = new_epoch
            await r.delete(k.warming)
            log.warning("board %s rebuilt from Postgres: %d users", k.board_name, rows)
        finally:
            self.progress.running = False
            if await r.get(k.rebuild_lock) == self._me:
                await r.delete(k.rebuild_lock)
        return "rebuilt"

    async def _replay(self) -> None:
        """Put back this shard's writes Postgres may lack, each into its board's season (a
        deleted board's are skipped; so are a season's the instance freed)."""
        items: list[Item] = []
        for e in self._unstored.events():
            board = DEFAULT if e.board == DEFAULT_BOARD else self._lookup(e.board)
            if board is not None:
                items.append((board, e.season, e.row()))
        if items:
            n = await restore_items(self._redis, self._keys, items, self._stream, self._boards)
            await announce_flush([self._redis], self._keys)  # put back without announcements
            log.warning("replayed %d of %d events Postgres did not have yet", n, len(items))
