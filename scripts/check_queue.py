"""Per shard: backlog, pending, consumer-group lag, dead letters and up to 20 events.

With several Redis instances (REDIS_SHARDS) also GLOBAL's staleness: the fold-lag histogram
and, per shard on another instance, the age of its oldest event not yet folded for sure.

With ``--board B`` also that board's rollover state: its live season, ``archived_through``,
every shard's drain mark, and how many of its events wait on each stream (of the first
``--scan`` entries).

Usage: .venv/bin/python scripts/check_queue.py [--count N] [--board B [--scan N]]
       (or: make check-queue)
Reads REDIS_URL, REDIS_SHARDS, REGION_SPLITS, REGIONS and BOARD like the service (no
JWT_SECRET needed).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from leaderboard.boards import DEFAULT, Board, format_rfc3339
from leaderboard.fold import FoldLag, oldest_event_ages
from leaderboard.keys import WRITERS_GROUP, Keys
from leaderboard.pipeline.events import BadEvent, board_of, named
from leaderboard.pipeline.stream import shards_to_drain
from leaderboard.redis_client import connect
from leaderboard.settings import StoreSettings
from leaderboard.shards import Topology, redacted


async def report(count: int) -> None:
    store = StoreSettings()
    keys = Keys(store.board)
    topology = Topology.of(store)
    several = len(topology.urls()) > 1
    for url in topology.urls():
        redis = connect(url)
        try:
            if several:
                print(f"Redis {redacted(url)}:")
            # with the streams of shards no longer configured, which the writers still drain
            shards = await shards_to_drain(redis, keys, topology.shards_on(url))
            await report_instance(redis, keys, shards, count)
            if several and url == topology.global_url:
                await report_global(redis, keys)
        finally:
            await redis.aclose()
    if several:
        for url in topology.urls():
            remote = [s for s in topology.shards_on(url) if s in topology.remote_shards()]
            if remote:
                redis = connect(url)
                ages = await oldest_event_ages(redis, keys, remote)
                await redis.aclose()
                for shard, age in ages.items():
                    print(f"GLOBAL staleness bound for {shard}: oldest unfolded-for-sure event "
                          f"{age} ms old")


async def report_global(redis: aioredis.Redis, keys: Keys) -> None:
    """The fold-lag histogram GLOBAL's instance keeps."""
    lag = FoldLag.from_hash(await redis.hgetall(keys.fold_stats))
    print(f"GLOBAL fold lag: {lag.counts}  max={lag.max_ms:.1f}ms  last={lag.last_ms:.1f}ms  "
          f"folded by shards={lag.applied_fast}  by writers (fast path missed)={lag.applied_net}")


async def report_instance(redis: aioredis.Redis, keys: Keys, shards: list[str], count: int) -> None:
    for shard in shards:
        name = keys.stream(shard)
        backlog = await redis.xlen(name)
        dead = await redis.xlen(keys.dead(shard))
        try:
            groups = {g["name"]: g for g in await redis.xinfo_groups(name)}
        except ResponseError:
            groups = {}
        g = groups.get(WRITERS_GROUP)
        pending = g["pending"] if g else "-"
        lag = g.get("lag") if g else "-"
        consumers = g["consumers"] if g else 0
        print(f"{shard}: stream {name}  backlog={backlog}  pending={pending}  lag={lag}  "
              f"consumers={consumers}  dead_letters={dead}")
        for entry_id, fields in await redis.xrange(name, count=count):
            print(f"  {entry_id} {named(fields)}")


async def report_board(board_id: str, scan: int) -> None:
    """One board's rollover: its season now, what is archived, the marks, its queued events."""
    store = StoreSettings()
    keys, topology = Keys(store.board), Topology.of(store)
    pg = await asyncpg.connect(store.dsn())
    try:
        row = await pg.fetchrow("SELECT * FROM boards WHERE id = $1", board_id)
        if row is None:
            print(f"no board {board_id!r}")
            return
        board = DEFAULT if board_id == DEFAULT.id else Board.from_row(row)
        marks = await pg.fetch("SELECT shard, drained_through FROM drain_marks ORDER BY shard")
    finally:
        await pg.close()
    season = board.schedule.season_at(int(time.time() * 1_000_000))
    print(f"board {board.id}: season now {season}, archived through {row['archived_through']}"
          + (", deleted (purge pending)" if row["deleted_at"] else ""))
    for mark in marks:
        print(f"  drain mark {mark['shard']}: {format_rfc3339(mark['drained_through'])}")
    for url in topology.urls():
        redis = connect(url)
        try:
            for shard in topology.shards_on(url):
                entries = await redis.xrange(keys.stream(shard), count=scan)
                mine = [board_of(f) for _, f in entries if _names(f, board.id)]
                by_season = sorted({s for _, s in mine})
                print(f"  {shard}: {len(mine)} of its events in the first {len(entries)} "
                      f"entries, seasons {by_season}")
        finally:
            await redis.aclose()


def _names(fields: dict[str, str], board_id: str) -> bool:
    try:
        return board_of(fields)[0] == board_id
    except BadEvent:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20, help="events to show per shard")
    parser.add_argument("--board", help="also this board's rollover state")
    parser.add_argument("--scan", type=int, default=10_000,
                        help="with --board: stream entries to look through per shard")
    args = parser.parse_args()
    asyncio.run(report(args.count))
    if args.board:
        asyncio.run(report_board(args.board, args.scan))


if __name__ == "__main__":
    main()
